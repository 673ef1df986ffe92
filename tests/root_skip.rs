//! The decision of tests/common/root.rs, what an e2e test does without root: runs as any
//! user (no network namespaces).

// have_root and the macros are for the e2e tests; only the decision is tested here.
#[allow(dead_code)]
#[path = "common/root.rs"]
mod root;

use root::{root_check, RootCheck};

#[test]
fn root_runs_whatever_the_environment() {
    for ci in [None, Some("true"), Some("false")] {
        for skip in [None, Some("1"), Some("0")] {
            assert_eq!(
                root_check(true, ci, skip),
                RootCheck::Run,
                "CI={ci:?} skip={skip:?}"
            );
        }
    }
}

#[test]
fn not_root_fails_by_default() {
    for ci in [None, Some("false"), Some("")] {
        match root_check(false, ci, None) {
            RootCheck::Fail(why) => assert!(why.contains("SNOOPCAST_SKIP_ROOT_TESTS=1"), "{why}"),
            other => panic!("CI={ci:?}: {other:?}"),
        }
    }
    assert!(matches!(
        root_check(false, None, Some("0")),
        RootCheck::Fail(_)
    ));
    assert!(matches!(
        root_check(false, None, Some("yes")),
        RootCheck::Fail(_)
    ));
}

#[test]
fn not_root_skips_only_when_asked() {
    assert_eq!(root_check(false, None, Some("1")), RootCheck::Skip);
    assert_eq!(root_check(false, Some("false"), Some("1")), RootCheck::Skip);
}

#[test]
fn ci_never_skips() {
    for skip in [None, Some("1")] {
        match root_check(false, Some("true"), skip) {
            RootCheck::Fail(why) => assert!(why.contains("CI=true"), "{why}"),
            other => panic!("skip={skip:?}: {other:?}"),
        }
    }
}

#[test]
fn test_name_is_the_function_path() {
    assert_eq!(test_name!(), "root_skip::test_name_is_the_function_path");
}
