//! Content blocks: a block type is a JSON Schema (what a block's content must hold)
//! and, optionally, a Handlebars template that renders it as HTML. Content is checked
//! against the schema — every fault named by its JSON path — and rendered once when it
//! is saved, in strict mode, so a template that reads a missing field fails then, not
//! as an empty string in front of visitors. Rendering escapes HTML by default.

use handlebars::Handlebars;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{invalid, Result};

/// A block type as defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockTypeDefinition {
    /// The JSON Schema of a block's content.
    pub schema: Value,
    /// A Handlebars template over the content, for HTML assembly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A block type that passed [`BlockTypeDefinition::check`].
pub struct BlockType {
    validator: jsonschema::Validator,
    templates: Option<Handlebars<'static>>,
}

impl std::fmt::Debug for BlockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockType")
            .field("template", &self.templates.is_some())
            .finish()
    }
}

const TEMPLATE: &str = "block";

impl BlockTypeDefinition {
    /// Compiles the schema and the template, naming what does not compile.
    pub fn check(&self) -> Result<BlockType> {
        if !self.schema.is_object() {
            return Err(invalid("schema", "a block type's schema is a JSON object"));
        }
        let validator = jsonschema::validator_for(&self.schema)
            .map_err(|e| invalid("schema", format!("does not compile: {e}")))?;
        let templates = match &self.template {
            None => None,
            Some(t) => {
                let mut h = Handlebars::new();
                h.set_strict_mode(true);
                h.register_template_string(TEMPLATE, t)
                    .map_err(|e| invalid("template", format!("does not compile: {e}")))?;
                Some(h)
            }
        };
        Ok(BlockType {
            validator,
            templates,
        })
    }
}

impl BlockType {
    /// Checks `content` against the schema and renders it once (strict): the error
    /// lists every fault as `PATH: message` (`/` for the whole).
    pub fn check_content(&self, content: &Value) -> Result<()> {
        let faults: Vec<String> = self
            .validator
            .iter_errors(content)
            .map(|e| {
                let path = e.instance_path().to_string();
                format!("{}: {e}", if path.is_empty() { "/" } else { &path })
            })
            .collect();
        if !faults.is_empty() {
            return Err(invalid("content", faults.join("; ")));
        }
        self.render(content).map(|_| ())
    }

    /// The content as HTML, when the type has a template (HTML-escaped; strict).
    pub fn render(&self, content: &Value) -> Result<Option<String>> {
        match &self.templates {
            None => Ok(None),
            Some(h) => h
                .render(TEMPLATE, content)
                .map(Some)
                .map_err(|e| invalid("template", format!("does not render this content: {e}"))),
        }
    }

    /// Whether the type renders HTML.
    pub fn has_template(&self) -> bool {
        self.templates.is_some()
    }
}

/// The block types every installation has: headline, image, call to action, product
/// list, article teaser, banner (name, definition).
pub fn builtin() -> Vec<(&'static str, BlockTypeDefinition)> {
    let text = |max: u64| json!({"type": "string", "minLength": 1, "maxLength": max});
    let url = json!({"type": "string", "pattern": "^(https?://|/)"});
    let object = |props: Value, required: &[&str]| {
        json!({"type": "object", "properties": props, "required": required,
               "additionalProperties": false})
    };
    let def = |schema: Value, template: &str| BlockTypeDefinition {
        schema,
        template: Some(template.to_owned()),
    };
    vec![
        (
            "headline",
            def(
                object(json!({"title": text(200), "subtitle": text(400)}), &["title"]),
                "<h2>{{title}}</h2>{{#if subtitle}}<p>{{subtitle}}</p>{{/if}}",
            ),
        ),
        (
            "image",
            def(
                object(
                    json!({"src": url, "alt": text(300), "width": {"type": "integer", "minimum": 1},
                           "height": {"type": "integer", "minimum": 1}}),
                    &["src", "alt"],
                ),
                "<img src=\"{{src}}\" alt=\"{{alt}}\">",
            ),
        ),
        (
            "call_to_action",
            def(
                object(json!({"label": text(80), "href": url}), &["label", "href"]),
                "<a class=\"cta\" href=\"{{href}}\">{{label}}</a>",
            ),
        ),
        (
            "product_list",
            def(
                object(
                    json!({"title": text(200), "products": {"type": "array", "minItems": 1, "maxItems": 50,
                        "items": object(json!({"id": text(100), "name": text(200), "href": url,
                                               "price": {"type": "number", "minimum": 0}}), &["id", "name"])}}),
                    &["products"],
                ),
                "{{#if title}}<h3>{{title}}</h3>{{/if}}<ul>{{#each products}}<li>{{name}}</li>{{/each}}</ul>",
            ),
        ),
        (
            "article_teaser",
            def(
                object(
                    json!({"title": text(200), "summary": text(1000), "href": url, "image": url}),
                    &["title", "summary", "href"],
                ),
                "<article><h3><a href=\"{{href}}\">{{title}}</a></h3><p>{{summary}}</p></article>",
            ),
        ),
        (
            "banner",
            def(
                object(json!({"text": text(300), "href": url, "tone": {"enum": ["info", "promo", "warning"]}}), &["text"]),
                "<div class=\"banner\">{{text}}</div>",
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headline() -> BlockType {
        builtin()
            .into_iter()
            .find(|(n, _)| *n == "headline")
            .unwrap()
            .1
            .check()
            .unwrap()
    }

    #[test]
    fn content_is_checked_by_path_and_rendered_escaped() {
        let h = headline();
        let html = h
            .render(&json!({"title": "Hello <b>you</b>"}))
            .unwrap()
            .unwrap();
        assert_eq!(html, "<h2>Hello &lt;b&gt;you&lt;/b&gt;</h2>");
        let e = h
            .check_content(&json!({"subtitle": 3, "extra": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/: ") && e.contains("title"), "{e}");
        assert!(e.contains("/subtitle: "), "{e}");
        for (name, d) in builtin() {
            d.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_schemas_and_templates_are_refused_when_saved() {
        let bad_schema = BlockTypeDefinition {
            schema: json!({"type": "strnig"}),
            template: None,
        };
        assert!(bad_schema
            .check()
            .unwrap_err()
            .to_string()
            .contains("schema"));
        let bad_template = BlockTypeDefinition {
            schema: json!({"type": "object"}),
            template: Some("{{#if x}}unclosed".into()),
        };
        assert!(bad_template
            .check()
            .unwrap_err()
            .to_string()
            .contains("template"));
        // A field the template reads and the content lacks fails at save, not at serve.
        let strict = BlockTypeDefinition {
            schema: json!({"type": "object"}),
            template: Some("<p>{{missing}}</p>".into()),
        }
        .check()
        .unwrap();
        assert!(strict
            .check_content(&json!({"other": 1}))
            .unwrap_err()
            .to_string()
            .contains("does not render"));
    }
}
