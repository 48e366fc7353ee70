//! Property: whatever transitions are attempted, a tenant only ever moves along
//! a row of the transition table, and refused moves change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use provisioning_core::{Error, TRANSITIONS, TenantState};

fn any_state() -> impl Strategy<Value = TenantState> {
    proptest::sample::select(TenantState::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_state_outside_the_table_is_ever_reached(attempts in proptest::collection::vec(any_state(), 0..64)) {
        let mut state = TenantState::Requested;
        let mut path = vec![state];
        for to in attempts {
            match state.transition_to(to) {
                Ok(next) => {
                    prop_assert!(TRANSITIONS.contains(&(state, to)), "{state} -> {to} is not in the table");
                    prop_assert_eq!(next, to);
                    state = next;
                    path.push(state);
                }
                Err(Error::IllegalTransition { from, to: refused }) => {
                    prop_assert!(!TRANSITIONS.contains(&(state, to)));
                    prop_assert_eq!((from, refused), (state, to));
                }
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
        // Every consecutive pair on the path is a row of the table.
        for pair in path.windows(2) {
            prop_assert!(TRANSITIONS.contains(&(pair[0], pair[1])));
        }
        // Once deleted, always deleted.
        if let Some(i) = path.iter().position(|s| *s == TenantState::Deleted) {
            prop_assert!(path[i..].iter().all(|s| *s == TenantState::Deleted));
        }
    }

    #[test]
    fn can_transition_to_agrees_with_the_table(from in any_state(), to in any_state()) {
        prop_assert_eq!(from.can_transition_to(to), TRANSITIONS.contains(&(from, to)));
        prop_assert_eq!(from.transition_to(to).is_ok(), from.can_transition_to(to));
    }
}

#[test]
fn the_lifecycle_of_the_design_is_in_the_table() {
    use TenantState::*;
    let happy = [
        Requested,
        Validating,
        Provisioning,
        Active,
        Suspended,
        Active,
        Deleting,
        Deleted,
    ];
    for pair in happy.windows(2) {
        assert!(
            pair[0].can_transition_to(pair[1]),
            "{} -> {}",
            pair[0],
            pair[1]
        );
    }
    for from in [Validating, Provisioning] {
        assert!(from.can_transition_to(Failed));
    }
    assert!(Failed.can_transition_to(Validating), "failed is retryable");
    assert!(!Requested.can_transition_to(Active));
    assert!(!Active.can_transition_to(Deleted), "deleting comes first");
    assert!(Deleted.next_states().next().is_none());
    // A move holds an active tenant, or a suspended one in a drain, and
    // ends in one of those; nothing else touches a moving tenant.
    for from in [Active, Suspended] {
        assert!(from.can_transition_to(Moving) && Moving.can_transition_to(from));
    }
    let mut after_moving: Vec<_> = Moving.next_states().collect();
    after_moving.sort();
    assert_eq!(after_moving, [Active, Suspended]);
    for from in [
        Requested,
        Validating,
        Provisioning,
        Deleting,
        Deleted,
        Failed,
    ] {
        assert!(!from.can_transition_to(Moving), "{from} -> moving");
    }
}
