//! Targeting conditions and flag evaluation: values, variants and OpenFeature reasons.
use assent_experiments::flags::{ErrorCode, FlagDefinition, Reason};
use assent_experiments::targeting::{Condition, Context};
use serde_json::{json, Value};

fn condition(v: Value) -> Condition {
    let c: Condition = serde_json::from_value(v).unwrap();
    c.check().unwrap();
    c
}

#[test]
fn conditions_read_the_context() {
    let segments = vec!["beta".to_owned()];
    let version = semver::Version::parse("2.4.1").unwrap();
    // 2026-12-02 09:30 UTC is a Wednesday; at +120 minutes it is 11:30 there.
    let ctx = Context {
        subject: "s1",
        segments: &segments,
        device: Some("mobile"),
        os: Some("iOS"),
        browser: Some("Safari"),
        country: Some("FR"),
        app_version: Some(&version),
        now_ms: 1_796_203_800_000,
        utc_offset_minutes: Some(120),
    };
    assert_eq!(ctx.local_time(), Some((11, 2)));
    let yes = [
        json!({"segment": "beta"}),
        json!({"device": ["Mobile", "tablet"]}),
        json!({"os": ["ios"]}),
        json!({"browser": ["safari"]}),
        json!({"country": ["BE", "FR"]}),
        json!({"local_hour": {"from": 9, "to": 17}}),
        json!({"local_hour": {"from": 22, "to": 12}}),
        json!({"weekday": ["mon", "wed"]}),
        json!({"app_version": {"gte": "2.4.0"}}),
        json!({"app_version": {"lt": "10.0.0"}}),
        json!({"rollout": 100}),
        json!({"all": []}),
        json!({"all": [{"country": ["FR"]}, {"not": {"segment": "staff"}}]}),
        json!({"any": [{"country": ["DE"]}, {"device": ["mobile"]}]}),
    ];
    for c in yes {
        assert!(condition(c.clone()).matches(&ctx, "flag"), "{c}");
    }
    let no = [
        json!({"segment": "staff"}),
        json!({"country": ["DE"]}),
        json!({"local_hour": {"from": 12, "to": 18}}),
        json!({"weekday": ["sat", "sun"]}),
        json!({"app_version": {"eq": "2.4.0"}}),
        json!({"rollout": 0}),
        json!({"any": []}),
    ];
    for c in no {
        assert!(!condition(c.clone()).matches(&ctx, "flag"), "{c}");
    }
    // What the context does not know never matches.
    let bare = Context {
        subject: "s1",
        ..Default::default()
    };
    for c in [
        json!({"country": ["FR"]}),
        json!({"local_hour": {"from": 0, "to": 24}}),
        json!({"app_version": {"gte": "0.0.0"}}),
    ] {
        assert!(!condition(c.clone()).matches(&bare, "flag"), "{c}");
    }
    assert_eq!(
        condition(json!({"any": [{"segment": "a"}, {"not": {"segment": "b"}}]})).segments(),
        ["a", "b"]
    );
}

#[test]
fn bad_conditions_name_their_place() {
    let fault = |v: Value| match serde_json::from_value::<Condition>(v.clone()) {
        Ok(c) => c.check().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        fault(json!({"all": [{"country": ["FR"]}, {"country": ["fr"]}]}))
            .contains("all[1].country")
    );
    assert!(fault(json!({"rollout": 120})).contains("rollout"));
    assert!(fault(json!({"local_hour": {"from": 25, "to": 3}})).contains("local_hour"));
    assert!(fault(json!({"device": []})).contains("device"));
    assert!(fault(json!({"planet": ["mars"]})).contains("unknown variant"));
    assert!(fault(json!({"app_version": {"gte": "two"}})).contains("unexpected character"));
    let mut deep = json!({"segment": "x"});
    for _ in 0..10 {
        deep = json!({"not": deep});
    }
    assert!(fault(deep).contains("nested deeper"));
}

#[test]
fn rollouts_grow_without_moving_anyone_out() {
    let (ten, fifty) = (
        condition(json!({"rollout": 10})),
        condition(json!({"rollout": 50})),
    );
    let mut n = (0, 0);
    for i in 0..20_000 {
        let s = format!("s{i}");
        let ctx = Context {
            subject: &s,
            ..Default::default()
        };
        let (a, b) = (ten.matches(&ctx, "f"), fifty.matches(&ctx, "f"));
        assert!(!a || b, "{s} was in at 10 % and out at 50 %");
        n.0 += a as u32;
        n.1 += b as u32;
    }
    assert!(
        (1_800..2_200).contains(&n.0) && (9_600..10_400).contains(&n.1),
        "{n:?}"
    );
}

fn flag(v: Value) -> assent_experiments::flags::Flag {
    serde_json::from_value::<FlagDefinition>(v)
        .unwrap()
        .check("new-checkout")
        .unwrap()
}

#[test]
fn flags_give_value_variant_and_reason() {
    let f = flag(
        json!({"kind": "boolean", "variants": {"on": true, "off": false},
        "default_variant": "off",
        "rules": [{"when": {"segment": "beta"}, "serve": {"variant": "on"}},
                  {"when": {"country": ["FR"]}, "serve": {"split": {"on": 0.5, "off": 0.5}}}]}),
    );
    let beta = vec!["beta".to_owned()];
    let default = json!(false);
    let e = f.evaluate(
        &Context {
            subject: "s",
            segments: &beta,
            ..Default::default()
        },
        &default,
    );
    assert_eq!(
        (e.value, e.variant, e.reason),
        (&json!(true), Some("on"), Reason::TargetingMatch)
    );
    let e = f.evaluate(
        &Context {
            subject: "s",
            ..Default::default()
        },
        &default,
    );
    assert_eq!(
        (e.value, e.variant, e.reason),
        (&json!(false), Some("off"), Reason::Default)
    );
    let mut on = 0;
    for i in 0..2_000 {
        let s = format!("s{i}");
        let e = f.evaluate(
            &Context {
                subject: &s,
                country: Some("FR"),
                ..Default::default()
            },
            &default,
        );
        assert_eq!(e.reason, Reason::Split);
        on += (e.variant == Some("on")) as u32;
    }
    assert!((900..1_100).contains(&on), "{on}");
    // A split without a subject, a default of the wrong type: the caller's default.
    let e = f.evaluate(
        &Context {
            country: Some("FR"),
            ..Default::default()
        },
        &default,
    );
    assert_eq!(
        (e.value, e.reason, e.error),
        (
            &default,
            Reason::Error,
            Some(ErrorCode::TargetingKeyMissing)
        )
    );
    let wrong = json!("yes");
    let e = f.evaluate(&Context::default(), &wrong);
    assert_eq!(
        (e.value, e.variant, e.error),
        (&wrong, None, Some(ErrorCode::TypeMismatch))
    );

    let fixed =
        flag(json!({"kind": "json", "variants": {"v1": {"limit": 3}}, "default_variant": "v1"}));
    let empty = json!({});
    let e = fixed.evaluate(&Context::default(), &empty);
    assert_eq!((e.value, e.reason), (&json!({"limit": 3}), Reason::Static));
    let off = flag(
        json!({"kind": "number", "enabled": false, "variants": {"a": 1}, "default_variant": "a"}),
    );
    let seven = json!(7);
    let e = off.evaluate(&Context::default(), &seven);
    assert_eq!(
        (e.value, e.variant, e.reason),
        (&json!(7), None, Reason::Disabled)
    );
}

#[test]
fn bad_flags_name_their_fault() {
    let fault = |v: Value| {
        serde_json::from_value::<FlagDefinition>(v)
            .unwrap()
            .check("f")
            .unwrap_err()
            .to_string()
    };
    assert!(
        fault(json!({"kind": "boolean", "variants": {"on": "yes"}, "default_variant": "on"}))
            .contains("\"on\" is not a Boolean")
    );
    assert!(
        fault(json!({"kind": "string", "variants": {"a": "x"}, "default_variant": "b"}))
            .contains("default_variant: no variant \"b\"")
    );
    assert!(fault(
        json!({"kind": "string", "variants": {"a": "x", "b": "y"}, "default_variant": "a",
        "rules": [{"serve": {"split": {"a": 0.5, "b": 0.6}}}]})
    )
    .contains("rules[0].serve.split"));
    assert!(fault(
        json!({"kind": "string", "variants": {"a": "x"}, "default_variant": "a",
        "rules": [{"when": {"country": ["france"]}, "serve": {"variant": "a"}}]})
    )
    .contains("rules[0].when"));
    assert!(
        fault(json!({"kind": "string", "variants": {}, "default_variant": "a"}))
            .contains("at least one variant")
    );
}
