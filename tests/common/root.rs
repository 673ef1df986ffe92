//! What a test that needs root does without it (tests/README.md, "Root"). Standalone (no
//! other harness module), so tests/root_skip.rs can test the decision without root.

/// Set to 1 to let the tests that need root skip (with a line on stderr) instead of failing.
pub const SKIP_ROOT_TESTS: &str = "SNOOPCAST_SKIP_ROOT_TESTS";

/// What a test that needs root does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCheck {
    /// Root: run the test.
    Run,
    /// Not root, SNOOPCAST_SKIP_ROOT_TESTS=1 and not CI: say so on stderr and return.
    Skip,
    /// Not root otherwise: fail with this message.
    Fail(String),
}

/// The decision, from the effective uid being 0 and the values of CI and
/// SNOOPCAST_SKIP_ROOT_TESTS: CI=true always fails without root (CI must not skip), so does
/// a run without the opt-in (a test that did nothing must not be reported as passed).
pub fn root_check(is_root: bool, ci: Option<&str>, skip: Option<&str>) -> RootCheck {
    if is_root {
        RootCheck::Run
    } else if ci == Some("true") {
        RootCheck::Fail(
            "e2e tests need root (network namespaces, veth, bridges); CI=true, so this fails"
                .to_string(),
        )
    } else if skip == Some("1") {
        RootCheck::Skip
    } else {
        RootCheck::Fail(format!(
            "this test needs root (network namespaces, veth, bridges): run it with \
             `sudo tests/run.sh`, or set {SKIP_ROOT_TESTS}=1 to skip it"
        ))
    }
}

/// True when running as root. Otherwise panics (see `root_check`), or, with
/// SNOOPCAST_SKIP_ROOT_TESTS=1, prints "SKIPPED (needs root): <test>" to stderr and returns
/// false.
pub fn have_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let ci = std::env::var("CI").ok();
    let skip = std::env::var(SKIP_ROOT_TESTS).ok();
    match root_check(is_root, ci.as_deref(), skip.as_deref()) {
        RootCheck::Run => true,
        RootCheck::Skip => {
            // Straight to fd 2, not eprintln!: libtest hides what a passing test prints.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED (needs root): {test}");
            false
        }
        RootCheck::Fail(why) => panic!("{test}: {why}"),
    }
}

/// The path of the function this is expanded in, e.g. `e2e_ipv4::join_and_leave`.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn f() {}
        fn type_name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let name = type_name_of(f);
        name.strip_suffix("::f").unwrap_or(name)
    }};
}

/// Returns from the test when not root and SNOOPCAST_SKIP_ROOT_TESTS=1 (printing
/// "SKIPPED (needs root): <test>"); fails it when not root otherwise (see `root_check`).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::have_root($crate::test_name!()) {
            return;
        }
    };
}
