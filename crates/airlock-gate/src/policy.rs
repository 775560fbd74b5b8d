//! Release policy: how a package's versions go live, and the layering of registry-wide, scope and
//! package settings into the policy that applies.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::Duration;

use crate::display::span;
use crate::risk::RiskSignal;

/// The most approvals a configured policy may require. More maintainers than almost any package
/// has with second factors enrolled; a larger quorum would leave releases unapprovable rather
/// than safer. Risk escalation may add one more (see [`ReleasePolicy::max_approvals`]).
pub const MAX_APPROVALS: u8 = 10;

/// The longest cooling-off window. A month covers the slowest review cycle we know of; beyond
/// that a fix could not reach users in time and people would route around the gate.
pub const MAX_COOLING_OFF: Duration = Duration::days(30);

/// The shortest time a stage stays open: an hour, so a second approver in another time zone or
/// a meeting away still has a chance before the stage expires.
pub const MIN_STAGE_TTL: Duration = Duration::hours(1);

/// The longest time a stage stays open: about a quarter, after which an unapproved tarball is
/// stale and should be built and staged again.
pub const MAX_STAGE_TTL: Duration = Duration::days(90);

/// How long a stage stays open unless the policy says otherwise: a week, as npm's stages do.
pub const DEFAULT_STAGE_TTL: Duration = Duration::days(7);

/// How `npm publish` is treated for a package.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// `npm publish` makes a version live at once; `npm stage publish` still goes through the
    /// gate.
    #[default]
    Direct,
    /// `npm publish` is refused; every version goes through `npm stage publish` and the gate.
    Staged,
}

impl fmt::Display for PublishMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            PublishMode::Direct => "direct",
            PublishMode::Staged => "staged",
        })
    }
}

/// The rules a release is held to. The policy in effect when a release is staged is captured in
/// its state, so later policy changes never alter a release already under way.
///
/// `publish` is read by the registry when `npm publish` arrives; the state machine itself reads
/// `approvals`, `cooling_off`, `expedite` and `stage_ttl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePolicy {
    /// Whether `npm publish` may skip the gate.
    pub publish: PublishMode,
    /// How many distinct maintainers must approve a staged release, each with a second factor.
    /// When it is 2 or more, whoever staged the release never counts.
    pub approvals: u8,
    /// How long an approved release waits before it goes live; any maintainer may reject it
    /// meanwhile. Zero means live at the last approval. Serialized in whole seconds.
    #[serde(rename = "cooling_off_seconds", with = "seconds")]
    pub cooling_off: Duration,
    /// Whether one approval beyond `approvals`, from a maintainer other than the stager, skips
    /// the cooling-off (for security fixes); such a release is recorded as expedited.
    pub expedite: bool,
    /// How long a stage waits for its approvals before it expires. Serialized in whole seconds.
    #[serde(rename = "stage_ttl_seconds", with = "seconds")]
    pub stage_ttl: Duration,
    /// The risk signals that escalated this policy for one release (see
    /// [`escalate`](crate::escalate)); empty for a configured policy.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub escalated_by: BTreeSet<RiskSignal>,
    /// Whether every version must carry verified provenance (a Sigstore bundle). Off by
    /// default; written only when on, so stored states keep their shape.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_provenance: bool,
    /// Whether a version may not drop the provenance the newest live version had, or bring
    /// provenance from another repository or workflow (see
    /// [`provenance_signals`](crate::provenance_signals)). On by default; written only when off.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub downgrade_protection: bool,
    /// A provenance change a maintainer declared in advance for one package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance_change: Option<ProvenanceChange>,
}

/// A provenance change declared before the release that makes it, so downgrade protection lets
/// it through: the package moves to another repository or workflow, or stops publishing with
/// provenance. Set through the package's policy (owner and second factor, logged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceChange {
    /// The next versions may come without provenance.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_missing: bool,
    /// The repository provenance may come from from now on: `owner/repo` or its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_repository: Option<String>,
    /// The workflow provenance may come from from now on: its file name (`release.yml`) or
    /// path in the repository (`.github/workflows/release.yml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_workflow: Option<String>,
}

impl ProvenanceChange {
    /// Whether the declaration says anything.
    pub fn is_empty(&self) -> bool {
        *self == ProvenanceChange::default()
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for ReleasePolicy {
    /// Direct publishing, one approval for staged releases, no cooling-off, no expedite, stages
    /// open for [`DEFAULT_STAGE_TTL`], provenance optional but never silently dropped.
    fn default() -> ReleasePolicy {
        ReleasePolicy {
            publish: PublishMode::Direct,
            approvals: 1,
            cooling_off: Duration::ZERO,
            expedite: false,
            stage_ttl: DEFAULT_STAGE_TTL,
            escalated_by: BTreeSet::new(),
            require_provenance: false,
            downgrade_protection: true,
            provenance_change: None,
        }
    }
}

impl ReleasePolicy {
    /// The most approvals this policy may require: [`MAX_APPROVALS`], plus the one approver risk
    /// escalation adds when the policy was escalated.
    pub fn max_approvals(&self) -> u8 {
        MAX_APPROVALS + u8::from(!self.escalated_by.is_empty())
    }

    /// Checks every field against its bounds: `approvals` in `1..=max_approvals()`,
    /// `cooling_off` in `0..=30 days`, `stage_ttl` in `1 hour..=90 days`, both durations in
    /// whole seconds.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check_approvals(self.approvals, self.max_approvals())?;
        check_cooling_off(self.cooling_off)?;
        check_stage_ttl(self.stage_ttl)
    }

    /// The approvals from maintainers other than the stager that skip the cooling-off, when
    /// `expedite` is on: one more than `approvals`.
    pub fn expedite_approvals(&self) -> usize {
        usize::from(self.approvals) + 1
    }
}

/// Why a policy, or one of its fields, is out of bounds.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// `approvals` is zero or above the maximum.
    #[error("`approvals` must be between 1 and {max}, got {got}")]
    Approvals {
        /// The value given.
        got: u8,
        /// The largest value allowed.
        max: u8,
    },
    /// `cooling_off` is negative or longer than [`MAX_COOLING_OFF`].
    #[error("`cooling_off` must be between 0 seconds and 30 days, got {}", span(*.got))]
    CoolingOff {
        /// The value given.
        got: Duration,
    },
    /// `stage_ttl` is outside [`MIN_STAGE_TTL`]..=[`MAX_STAGE_TTL`].
    #[error("`stage_ttl` must be between 1 hour and 90 days, got {}", span(*.got))]
    StageTtl {
        /// The value given.
        got: Duration,
    },
    /// A duration has a fraction of a second, which the stored form (whole seconds) would lose.
    #[error("`{field}` must be a whole number of seconds, got {}", span(*.got))]
    FractionalSeconds {
        /// The field: `cooling_off` or `stage_ttl`.
        field: &'static str,
        /// The value given.
        got: Duration,
    },
}

fn check_approvals(approvals: u8, max: u8) -> Result<(), PolicyError> {
    if (1..=max).contains(&approvals) {
        Ok(())
    } else {
        Err(PolicyError::Approvals {
            got: approvals,
            max,
        })
    }
}

fn check_cooling_off(cooling_off: Duration) -> Result<(), PolicyError> {
    if cooling_off.is_negative() || cooling_off > MAX_COOLING_OFF {
        return Err(PolicyError::CoolingOff { got: cooling_off });
    }
    check_whole_seconds("cooling_off", cooling_off)
}

fn check_stage_ttl(stage_ttl: Duration) -> Result<(), PolicyError> {
    if stage_ttl < MIN_STAGE_TTL || stage_ttl > MAX_STAGE_TTL {
        return Err(PolicyError::StageTtl { got: stage_ttl });
    }
    check_whole_seconds("stage_ttl", stage_ttl)
}

fn check_whole_seconds(field: &'static str, duration: Duration) -> Result<(), PolicyError> {
    if duration.subsec_nanoseconds() == 0 {
        Ok(())
    } else {
        Err(PolicyError::FractionalSeconds {
            field,
            got: duration,
        })
    }
}

/// Some fields of a policy, set at one layer; unset fields fall through to the layer below.
/// This is also the body of `airlock policy set`, so unknown fields are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// Overrides [`ReleasePolicy::publish`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishMode>,
    /// Overrides [`ReleasePolicy::approvals`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u8>,
    /// Overrides [`ReleasePolicy::cooling_off`].
    #[serde(
        rename = "cooling_off_seconds",
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_seconds"
    )]
    pub cooling_off: Option<Duration>,
    /// Overrides [`ReleasePolicy::expedite`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expedite: Option<bool>,
    /// Overrides [`ReleasePolicy::stage_ttl`].
    #[serde(
        rename = "stage_ttl_seconds",
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_seconds"
    )]
    pub stage_ttl: Option<Duration>,
    /// Overrides [`ReleasePolicy::require_provenance`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_provenance: Option<bool>,
    /// Overrides [`ReleasePolicy::downgrade_protection`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_protection: Option<bool>,
    /// Overrides [`ReleasePolicy::provenance_change`]; an empty declaration clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance_change: Option<ProvenanceChange>,
}

impl PolicyPatch {
    /// Whether the patch sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == PolicyPatch::default()
    }

    /// Checks the fields that are set against the same bounds as
    /// [`ReleasePolicy::validate`]; call it before storing a patch.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(approvals) = self.approvals {
            check_approvals(approvals, MAX_APPROVALS)?;
        }
        if let Some(cooling_off) = self.cooling_off {
            check_cooling_off(cooling_off)?;
        }
        if let Some(stage_ttl) = self.stage_ttl {
            check_stage_ttl(stage_ttl)?;
        }
        Ok(())
    }

    /// `policy` with the fields this patch sets replaced.
    pub fn over(&self, policy: ReleasePolicy) -> ReleasePolicy {
        ReleasePolicy {
            publish: self.publish.unwrap_or(policy.publish),
            approvals: self.approvals.unwrap_or(policy.approvals),
            cooling_off: self.cooling_off.unwrap_or(policy.cooling_off),
            expedite: self.expedite.unwrap_or(policy.expedite),
            stage_ttl: self.stage_ttl.unwrap_or(policy.stage_ttl),
            escalated_by: policy.escalated_by,
            require_provenance: self.require_provenance.unwrap_or(policy.require_provenance),
            downgrade_protection: self
                .downgrade_protection
                .unwrap_or(policy.downgrade_protection),
            provenance_change: match &self.provenance_change {
                Some(change) if change.is_empty() => None,
                Some(change) => Some(change.clone()),
                None => policy.provenance_change,
            },
        }
    }
}

/// Where a [`PolicyPatch`] is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyLayer {
    /// The registry-wide default.
    Registry,
    /// The default for one `@scope`.
    Scope,
    /// One package.
    Package,
}

impl fmt::Display for PolicyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            PolicyLayer::Registry => "registry-wide",
            PolicyLayer::Scope => "scope",
            PolicyLayer::Package => "package",
        })
    }
}

/// The policy settings that apply to one package, from the most general to the most specific.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLayers {
    /// The registry-wide default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<PolicyPatch>,
    /// The default for the package's scope (none for unscoped packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<PolicyPatch>,
    /// The package's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PolicyPatch>,
}

/// A policy layer holds an out-of-bounds value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("the {layer} release policy is invalid")]
pub struct LayerError {
    /// The layer at fault.
    pub layer: PolicyLayer,
    /// What is wrong with it.
    #[source]
    pub error: PolicyError,
}

impl PolicyLayers {
    /// The policy in effect: [`ReleasePolicy::default`], overridden by the registry-wide, then
    /// the scope, then the package patch. Every patch is checked, so a bad value is reported
    /// with the layer that holds it even when a later layer overrides it.
    pub fn effective(&self) -> Result<ReleasePolicy, LayerError> {
        let layers = [
            (PolicyLayer::Registry, &self.registry),
            (PolicyLayer::Scope, &self.scope),
            (PolicyLayer::Package, &self.package),
        ];
        let mut policy = ReleasePolicy::default();
        for (layer, patch) in layers {
            if let Some(patch) = patch {
                patch
                    .validate()
                    .map_err(|error| LayerError { layer, error })?;
                policy = patch.over(policy);
            }
        }
        Ok(policy)
    }
}

/// Durations as whole seconds (`i64`). Serializing a fractional duration fails rather than lose
/// the fraction; validation refuses such durations first.
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Duration;

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if duration.subsec_nanoseconds() != 0 {
            return Err(serde::ser::Error::custom(
                "durations are stored in whole seconds",
            ));
        }
        serializer.serialize_i64(duration.whole_seconds())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        i64::deserialize(deserializer).map(Duration::seconds)
    }
}

/// [`seconds`] for optional fields.
mod optional_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Duration;

    pub(super) fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => super::seconds::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<i64>::deserialize(deserializer).map(|seconds| seconds.map(Duration::seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch() -> PolicyPatch {
        PolicyPatch::default()
    }

    #[test]
    fn the_default_is_direct_one_approval_no_cooling_off_a_week_to_approve() {
        let policy = ReleasePolicy::default();
        assert_eq!(policy.publish, PublishMode::Direct);
        assert_eq!(policy.approvals, 1);
        assert_eq!(policy.cooling_off, Duration::ZERO);
        assert!(!policy.expedite);
        assert_eq!(policy.stage_ttl, Duration::days(7));
        assert!(policy.escalated_by.is_empty());
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn approvals_must_be_one_to_ten() {
        let mut policy = ReleasePolicy::default();
        for approvals in [1, 2, 10] {
            policy.approvals = approvals;
            assert_eq!(policy.validate(), Ok(()), "{approvals}");
        }
        policy.approvals = 0;
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "`approvals` must be between 1 and 10, got 0"
        );
        policy.approvals = 11;
        assert_eq!(
            policy.validate(),
            Err(PolicyError::Approvals { got: 11, max: 10 })
        );
    }

    #[test]
    fn an_escalated_policy_may_need_eleven_approvals() {
        let mut policy = ReleasePolicy {
            approvals: 11,
            ..ReleasePolicy::default()
        };
        policy.escalated_by.insert(RiskSignal::PublishBurst);
        assert_eq!(policy.max_approvals(), 11);
        assert_eq!(policy.validate(), Ok(()));
        policy.approvals = 12;
        assert_eq!(
            policy.validate(),
            Err(PolicyError::Approvals { got: 12, max: 11 })
        );
    }

    #[test]
    fn cooling_off_is_zero_to_thirty_days() {
        let mut policy = ReleasePolicy::default();
        for cooling_off in [Duration::ZERO, Duration::hours(1), Duration::days(30)] {
            policy.cooling_off = cooling_off;
            assert_eq!(policy.validate(), Ok(()));
        }
        policy.cooling_off = Duration::days(30) + Duration::SECOND;
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "`cooling_off` must be between 0 seconds and 30 days, got 30 days 1 second"
        );
        policy.cooling_off = -Duration::MINUTE;
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "`cooling_off` must be between 0 seconds and 30 days, got -1 minute"
        );
        policy.cooling_off = Duration::milliseconds(1_500);
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "`cooling_off` must be a whole number of seconds, got 1.5 seconds"
        );
    }

    #[test]
    fn stage_ttl_is_one_hour_to_ninety_days() {
        let mut policy = ReleasePolicy::default();
        for stage_ttl in [Duration::hours(1), Duration::days(90)] {
            policy.stage_ttl = stage_ttl;
            assert_eq!(policy.validate(), Ok(()));
        }
        policy.stage_ttl = Duration::minutes(59);
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "`stage_ttl` must be between 1 hour and 90 days, got 59 minutes"
        );
        policy.stage_ttl = Duration::days(91);
        assert_eq!(
            policy.validate(),
            Err(PolicyError::StageTtl {
                got: Duration::days(91)
            })
        );
        policy.stage_ttl = Duration::hours(2) + Duration::nanoseconds(1);
        assert_eq!(
            policy.validate(),
            Err(PolicyError::FractionalSeconds {
                field: "stage_ttl",
                got: Duration::hours(2) + Duration::nanoseconds(1)
            })
        );
    }

    #[test]
    fn no_layers_give_the_default() {
        assert_eq!(
            PolicyLayers::default().effective(),
            Ok(ReleasePolicy::default())
        );
    }

    #[test]
    fn later_layers_override_earlier_ones_field_by_field() {
        let layers = PolicyLayers {
            registry: Some(PolicyPatch {
                approvals: Some(2),
                cooling_off: Some(Duration::hours(24)),
                ..patch()
            }),
            scope: Some(PolicyPatch {
                publish: Some(PublishMode::Staged),
                approvals: Some(3),
                ..patch()
            }),
            package: Some(PolicyPatch {
                cooling_off: Some(Duration::ZERO),
                expedite: Some(true),
                ..patch()
            }),
        };
        assert_eq!(
            layers.effective(),
            Ok(ReleasePolicy {
                publish: PublishMode::Staged,
                approvals: 3,
                cooling_off: Duration::ZERO,
                expedite: true,
                stage_ttl: DEFAULT_STAGE_TTL,
                escalated_by: BTreeSet::new(),
                require_provenance: false,
                downgrade_protection: true,
                provenance_change: None,
            })
        );
    }

    #[test]
    fn a_missing_middle_layer_falls_through() {
        let layers = PolicyLayers {
            registry: Some(PolicyPatch {
                stage_ttl: Some(Duration::days(3)),
                ..patch()
            }),
            scope: None,
            package: Some(PolicyPatch {
                approvals: Some(2),
                ..patch()
            }),
        };
        let policy = layers.effective().unwrap();
        assert_eq!(policy.stage_ttl, Duration::days(3));
        assert_eq!(policy.approvals, 2);
    }

    #[test]
    fn a_bad_layer_is_named() {
        let layers = PolicyLayers {
            registry: None,
            scope: Some(PolicyPatch {
                approvals: Some(0),
                ..patch()
            }),
            package: Some(PolicyPatch {
                approvals: Some(2),
                ..patch()
            }),
        };
        let error = layers.effective().unwrap_err();
        assert_eq!(error.to_string(), "the scope release policy is invalid");
        assert_eq!(
            std::error::Error::source(&error).map(ToString::to_string),
            Some("`approvals` must be between 1 and 10, got 0".to_owned())
        );
    }

    #[test]
    fn patches_validate_only_what_they_set() {
        assert!(patch().is_empty());
        assert_eq!(patch().validate(), Ok(()));
        let bad = PolicyPatch {
            stage_ttl: Some(Duration::ZERO),
            ..patch()
        };
        assert!(!bad.is_empty());
        assert_eq!(
            bad.validate(),
            Err(PolicyError::StageTtl {
                got: Duration::ZERO
            })
        );
    }

    #[test]
    fn policies_serialize_durations_in_seconds() {
        let policy = ReleasePolicy {
            publish: PublishMode::Staged,
            approvals: 2,
            cooling_off: Duration::hours(24),
            ..ReleasePolicy::default()
        };
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "publish": "staged",
                "approvals": 2,
                "cooling_off_seconds": 86_400,
                "expedite": false,
                "stage_ttl_seconds": 604_800,
            })
        );
        assert_eq!(
            serde_json::from_value::<ReleasePolicy>(json).unwrap(),
            policy
        );
    }

    #[test]
    fn a_fractional_duration_does_not_serialize_silently() {
        let policy = ReleasePolicy {
            cooling_off: Duration::milliseconds(10),
            ..ReleasePolicy::default()
        };
        assert!(serde_json::to_string(&policy).is_err());
    }

    #[test]
    fn patches_parse_from_the_policy_set_body() {
        let patch: PolicyPatch =
            serde_json::from_str(r#"{"approvals": 2, "cooling_off_seconds": 3600}"#).unwrap();
        assert_eq!(
            patch,
            PolicyPatch {
                approvals: Some(2),
                cooling_off: Some(Duration::hours(1)),
                ..PolicyPatch::default()
            }
        );
        assert_eq!(
            serde_json::to_string(&patch).unwrap(),
            r#"{"approvals":2,"cooling_off_seconds":3600}"#
        );
        assert!(serde_json::from_str::<PolicyPatch>(r#"{"aprovals": 2}"#).is_err());
    }

    #[test]
    fn downgrade_protection_is_on_and_provenance_optional_by_default() {
        let policy = ReleasePolicy::default();
        assert!(policy.downgrade_protection);
        assert!(!policy.require_provenance);
        assert_eq!(policy.provenance_change, None);
        // A state stored before these fields existed reads back with the defaults.
        let stored = serde_json::json!({
            "publish": "direct", "approvals": 1, "cooling_off_seconds": 0,
            "expedite": false, "stage_ttl_seconds": 604_800,
        });
        assert_eq!(
            serde_json::from_value::<ReleasePolicy>(stored.clone()).unwrap(),
            policy
        );
        assert_eq!(serde_json::to_value(&policy).unwrap(), stored);
    }

    #[test]
    fn provenance_settings_layer_and_an_empty_declaration_clears() {
        let change = ProvenanceChange {
            expected_repository: Some("acme/new".into()),
            ..ProvenanceChange::default()
        };
        let layers = PolicyLayers {
            registry: Some(PolicyPatch {
                require_provenance: Some(true),
                ..patch()
            }),
            scope: Some(PolicyPatch {
                provenance_change: Some(change.clone()),
                ..patch()
            }),
            package: Some(PolicyPatch {
                downgrade_protection: Some(false),
                ..patch()
            }),
        };
        let policy = layers.effective().unwrap();
        assert!(policy.require_provenance);
        assert!(!policy.downgrade_protection);
        assert_eq!(policy.provenance_change, Some(change));

        let cleared = PolicyPatch {
            provenance_change: Some(ProvenanceChange::default()),
            ..patch()
        }
        .over(policy);
        assert_eq!(cleared.provenance_change, None);

        let parsed: PolicyPatch = serde_json::from_str(
            r#"{"require_provenance": true, "provenance_change": {"allow_missing": true}}"#,
        )
        .unwrap();
        assert_eq!(parsed.require_provenance, Some(true));
        assert!(parsed.provenance_change.unwrap().allow_missing);
        assert!(
            serde_json::from_str::<PolicyPatch>(r#"{"provenance_change": {"alow_missing": true}}"#)
                .is_err()
        );
    }
}
