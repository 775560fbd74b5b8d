//! Risk signals found at publish time, and how they raise the bar for one release.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::{ProvenanceChange, PublishMode, ReleasePolicy};

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

/// Who built a version, as its verified provenance says: what downgrade protection compares
/// between releases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenanceIdentity {
    /// The source repository's URL, e.g. `https://github.com/acme/widget`.
    pub repository: String,
    /// The provider's immutable id of the repository, when the certificate has one: a
    /// repository deleted and re-created under the same name gets another.
    pub repository_id: Option<String>,
    /// The workflow (build configuration) in the repository, e.g.
    /// `.github/workflows/release.yml`, without its ref.
    pub workflow: String,
}

/// The risk signals a new release's provenance raises against the newest live version's:
/// [`RiskSignal::ProvenanceDowngrade`] when the previous version had provenance and this one
/// has none, [`RiskSignal::ProvenanceIdentityChanged`] when it comes from another repository
/// (by URL or numeric id) or another workflow. A change `declared` in advance in the package's
/// policy raises nothing: `allow_missing` for a release without provenance, and
/// `expected_repository` / `expected_workflow` naming the new repository / workflow.
///
/// Nothing is raised when the previous version had no provenance (or there is none).
pub fn provenance_signals(
    previous: Option<&ProvenanceIdentity>,
    current: Option<&ProvenanceIdentity>,
    declared: Option<&ProvenanceChange>,
) -> Vec<RiskSignal> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let declared = declared.cloned().unwrap_or_default();
    let Some(current) = current else {
        return if declared.allow_missing {
            Vec::new()
        } else {
            vec![RiskSignal::ProvenanceDowngrade]
        };
    };
    let same_repository = previous
        .repository
        .eq_ignore_ascii_case(&current.repository)
        && match (&previous.repository_id, &current.repository_id) {
            (Some(before), Some(now)) => before == now,
            _ => true,
        };
    let repository_ok = same_repository
        || declared
            .expected_repository
            .as_deref()
            .is_some_and(|expected| names_repository(expected, &current.repository));
    let workflow_ok = previous.workflow == current.workflow
        || declared
            .expected_workflow
            .as_deref()
            .is_some_and(|expected| names_workflow(expected, &current.workflow));
    if repository_ok && workflow_ok {
        Vec::new()
    } else {
        vec![RiskSignal::ProvenanceIdentityChanged]
    }
}

/// `owner/repo` or the full URL names the repository at `url` (case-insensitive, as GitHub).
fn names_repository(expected: &str, url: &str) -> bool {
    let expected = expected.trim_end_matches('/');
    let url = url.to_ascii_lowercase();
    let expected = expected.to_ascii_lowercase();
    url == expected || url.ends_with(&format!("/{expected}"))
}

/// A file name (`release.yml`) or path (`.github/workflows/release.yml`) names `workflow`.
fn names_workflow(expected: &str, workflow: &str) -> bool {
    let expected = expected.trim_start_matches('/');
    workflow == expected || workflow.ends_with(&format!("/{expected}"))
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

    fn built_by(repository: &str, id: &str, workflow: &str) -> ProvenanceIdentity {
        ProvenanceIdentity {
            repository: format!("https://github.com/{repository}"),
            repository_id: Some(id.to_owned()),
            workflow: format!(".github/workflows/{workflow}"),
        }
    }

    #[test]
    fn provenance_without_a_provenanced_predecessor_raises_nothing() {
        let current = built_by("acme/widget", "1", "release.yml");
        assert_eq!(provenance_signals(None, None, None), vec![]);
        assert_eq!(provenance_signals(None, Some(&current), None), vec![]);
    }

    #[test]
    fn the_same_builder_raises_nothing() {
        let before = built_by("acme/widget", "1", "release.yml");
        let mut now = before.clone();
        now.repository = "https://github.com/ACME/Widget".into();
        assert_eq!(provenance_signals(Some(&before), Some(&now), None), vec![]);
    }

    #[test]
    fn dropping_provenance_is_a_downgrade_unless_declared() {
        let before = built_by("acme/widget", "1", "release.yml");
        assert_eq!(
            provenance_signals(Some(&before), None, None),
            vec![RiskSignal::ProvenanceDowngrade]
        );
        let declared = ProvenanceChange {
            expected_repository: Some("acme/widget".into()),
            ..ProvenanceChange::default()
        };
        assert_eq!(
            provenance_signals(Some(&before), None, Some(&declared)),
            vec![RiskSignal::ProvenanceDowngrade],
            "declaring a new repository does not allow dropping provenance"
        );
        let declared = ProvenanceChange {
            allow_missing: true,
            ..ProvenanceChange::default()
        };
        assert_eq!(
            provenance_signals(Some(&before), None, Some(&declared)),
            vec![]
        );
    }

    #[test]
    fn another_repository_workflow_or_repository_id_is_an_identity_change() {
        let before = built_by("acme/widget", "1", "release.yml");
        for now in [
            built_by("mallory/widget", "1", "release.yml"),
            built_by("acme/widget", "2", "release.yml"),
            built_by("acme/widget", "1", "other.yml"),
        ] {
            assert_eq!(
                provenance_signals(Some(&before), Some(&now), None),
                vec![RiskSignal::ProvenanceIdentityChanged],
                "{now:?}"
            );
        }
    }

    #[test]
    fn a_declared_move_lets_exactly_that_move_through() {
        let before = built_by("acme/widget", "1", "release.yml");
        let moved = built_by("acme-org/widget", "7", "release.yml");
        let to = |repository: Option<&str>, workflow: Option<&str>| ProvenanceChange {
            expected_repository: repository.map(str::to_owned),
            expected_workflow: workflow.map(str::to_owned),
            ..ProvenanceChange::default()
        };
        let allowed = [
            to(Some("acme-org/widget"), None),
            to(Some("https://github.com/Acme-Org/widget"), None),
        ];
        for declared in &allowed {
            assert_eq!(
                provenance_signals(Some(&before), Some(&moved), Some(declared)),
                vec![],
                "{declared:?}"
            );
        }
        // Another repository than the declared one, or a workflow change nobody declared.
        let elsewhere = built_by("mallory/widget", "9", "release.yml");
        assert_eq!(
            provenance_signals(Some(&before), Some(&elsewhere), Some(&allowed[0])),
            vec![RiskSignal::ProvenanceIdentityChanged]
        );
        let moved_and_renamed = built_by("acme-org/widget", "7", "publish.yml");
        assert_eq!(
            provenance_signals(Some(&before), Some(&moved_and_renamed), Some(&allowed[0])),
            vec![RiskSignal::ProvenanceIdentityChanged]
        );
        for workflow in ["publish.yml", ".github/workflows/publish.yml"] {
            assert_eq!(
                provenance_signals(
                    Some(&before),
                    Some(&moved_and_renamed),
                    Some(&to(Some("acme-org/widget"), Some(workflow)))
                ),
                vec![]
            );
        }
    }

    #[test]
    fn a_downgrade_escalates_a_staged_release_by_one_approver() {
        let before = built_by("acme/widget", "1", "release.yml");
        let policy = ReleasePolicy {
            publish: PublishMode::Staged,
            ..ReleasePolicy::default()
        };
        let signals = provenance_signals(Some(&before), None, None);
        let escalated = escalate(&policy, &signals);
        assert_eq!(escalated.publish, PublishMode::Staged);
        assert_eq!(escalated.approvals, 2);
        assert_eq!(
            escalated.escalated_by,
            BTreeSet::from([RiskSignal::ProvenanceDowngrade])
        );
        // A declared change escalates nothing.
        let declared = ProvenanceChange {
            allow_missing: true,
            ..ProvenanceChange::default()
        };
        let signals = provenance_signals(Some(&before), None, Some(&declared));
        assert_eq!(escalate(&policy, &signals), policy);
    }

    #[test]
    fn signals_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&RiskSignal::ALL).unwrap(),
            r#"["provenance_downgrade","provenance_identity_changed","new_install_scripts","new_publisher_token","publish_burst"]"#
        );
    }
}
