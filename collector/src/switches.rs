//! The collector's own switches that are feature flags: defining the boolean flag
//! [`REALTIME_FLAG`] turns real-time segmentation on or off for every replica (its
//! value for no one in particular: the default variant, or the static one), as
//! `PUT /v1/segmentation/realtime` does; a disabled or deleted flag leaves the switch as
//! it is. Called after a flag is set, by the routes and the command line.
use assent_experiments::targeting::Context;
use serde_json::Value;

use crate::{
    error::Result,
    experiments::{Experiments, Kind, REALTIME_FLAG},
    segments::Segments,
};

/// Applies what a new version of definition `name` of `kind` switches.
pub async fn apply(
    experiments: &Experiments,
    segments: &Segments,
    kind: Kind,
    name: &str,
    actor: String,
) -> Result<()> {
    if kind != Kind::Flag || name != REALTIME_FLAG {
        return Ok(());
    }
    let catalogue = experiments.catalogue().await?;
    let Some(flag) = catalogue.flags.get(name) else {
        return Ok(());
    };
    let unset = Value::Bool(false);
    let e = flag.evaluate(&Context::default(), &unset);
    if let (Some(_), Some(on)) = (e.variant, e.value.as_bool()) {
        segments.set_realtime(on, actor).await?;
    }
    Ok(())
}
