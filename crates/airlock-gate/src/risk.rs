//! Risk signals found at publish time, and how they raise the bar for one release.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::{PublishMode, ReleasePolicy};

/// Something about a release that makes it look less like its predecessors. The registry finds
/// these when a version is published or staged; the gate only reacts to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskSignal {
    /// Earlier versions carried provenance and this one does not.
    ProvenanceDowngrade,
    /// The provenance names another source repository, workflow or builder than before.
    ProvenanceIdentityChanged,
    /// The version adds lifecycle scripts (`preinstall`, `install`, `postinstall`) the previous
    /// one did not run.
    NewInstallScripts,
    /// The token or trusted publisher has never published this package before.
    NewPublisherToken,
    /// Unusually many versions were published in a short time.
    PublishBurst,
}

impl RiskSignal {
    /// Every signal, in order.
    pub const ALL: [RiskSignal; 5] = [
        RiskSignal::ProvenanceDowngrade,
        RiskSignal::ProvenanceIdentityChanged,
        RiskSignal::NewInstallScripts,
        RiskSignal::NewPublisherToken,
        RiskSignal::PublishBurst,
    ];
}

impl fmt::Display for RiskSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            RiskSignal::ProvenanceDowngrade => {
                "earlier versions had provenance and this one does not"
            }
            RiskSignal::ProvenanceIdentityChanged => {
                "the provenance names a different source or builder than earlier versions"
            }
            RiskSignal::NewInstallScripts => "this version adds install scripts",
            RiskSignal::NewPublisherToken => "the publishing credential has not published before",
            RiskSignal::PublishBurst => "many versions were published in a short time",
        })
    }
}

/// The policy for one release in which `signals` were found: with no signals, `policy` as it
/// is; with any, publishing is forced to [`PublishMode::Staged`] and one approver is added
/// (once, however many signals there are), and the signals are recorded in
/// [`ReleasePolicy::escalated_by`].
///
/// Escalating an already escalated policy records the new signals without adding another
/// approver, so calling this twice for the same release cannot raise the bar twice.
pub fn escalate(policy: &ReleasePolicy, signals: &[RiskSignal]) -> ReleasePolicy {
    let mut escalated = policy.clone();
    if signals.is_empty() {
        return escalated;
    }
    if escalated.escalated_by.is_empty() {
        escalated.approvals = escalated.approvals.saturating_add(1);
    }
    escalated.publish = PublishMode::Staged;
    escalated.escalated_by.extend(signals.iter().copied());
    escalated
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::Duration;

    use super::*;

    #[test]
    fn no_signals_change_nothing() {
        let policy = ReleasePolicy::default();
        assert_eq!(escalate(&policy, &[]), policy);
    }

    #[test]
    fn any_signal_forces_staging_and_adds_one_approver() {
        for signal in RiskSignal::ALL {
            let escalated = escalate(&ReleasePolicy::default(), &[signal]);
            assert_eq!(escalated.publish, PublishMode::Staged);
            assert_eq!(escalated.approvals, 2);
            assert_eq!(escalated.escalated_by, BTreeSet::from([signal]));
            assert_eq!(escalated.validate(), Ok(()));
        }
    }

    #[test]
    fn many_signals_add_one_approver_once() {
        let policy = ReleasePolicy {
            approvals: 2,
            cooling_off: Duration::hours(1),
            ..ReleasePolicy::default()
        };
        let escalated = escalate(&policy, &RiskSignal::ALL);
        assert_eq!(escalated.approvals, 3);
        assert_eq!(escalated.cooling_off, Duration::hours(1));
        assert_eq!(escalated.escalated_by.len(), 5);

        let again = escalate(
            &escalated,
            &[RiskSignal::PublishBurst, RiskSignal::PublishBurst],
        );
        assert_eq!(again.approvals, 3);
        assert_eq!(again.escalated_by.len(), 5);
    }

    #[test]
    fn escalating_twice_records_both_sets_of_signals() {
        let once = escalate(&ReleasePolicy::default(), &[RiskSignal::PublishBurst]);
        let twice = escalate(&once, &[RiskSignal::NewInstallScripts]);
        assert_eq!(twice.approvals, 2);
        assert_eq!(
            twice.escalated_by,
            BTreeSet::from([RiskSignal::NewInstallScripts, RiskSignal::PublishBurst])
        );
    }

    #[test]
    fn the_maximum_quorum_may_grow_by_one() {
        let policy = ReleasePolicy {
            approvals: crate::MAX_APPROVALS,
            ..ReleasePolicy::default()
        };
        let escalated = escalate(&policy, &[RiskSignal::ProvenanceDowngrade]);
        assert_eq!(escalated.approvals, crate::MAX_APPROVALS + 1);
        assert_eq!(escalated.validate(), Ok(()));
    }

    #[test]
    fn signals_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&RiskSignal::ALL).unwrap(),
            r#"["provenance_downgrade","provenance_identity_changed","new_install_scripts","new_publisher_token","publish_burst"]"#
        );
    }
}
