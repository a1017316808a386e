//! The namespace guard every kernel test relies on: namespaces are created,
//! connected, and gone afterwards on every path.

use podroute_tests::{Netns, netns_exists, require_root};

#[test]
fn namespaces_are_linked_and_deleted_on_drop() {
    require_root("namespace guard test");
    let (a_name, b_name);
    {
        let a = Netns::new("guard");
        let b = Netns::new("guard");
        a.link(&b, "192.0.2.1/30", "192.0.2.2/30");
        let routes = String::from_utf8_lossy(&a.exec("ip", &["-4", "route"]).stdout).into_owned();
        assert!(
            routes.contains("192.0.2.0/30"),
            "connected route missing: {routes}"
        );
        a_name = a.name().to_owned();
        b_name = b.name().to_owned();
        assert!(netns_exists(&a_name) && netns_exists(&b_name));
    }
    assert!(!netns_exists(&a_name), "{a_name} left behind");
    assert!(!netns_exists(&b_name), "{b_name} left behind");
}

#[test]
fn namespaces_are_deleted_when_the_test_panics() {
    require_root("namespace guard test");
    let name = std::panic::catch_unwind(|| {
        let ns = Netns::new("panic");
        let name = ns.name().to_owned();
        std::panic::panic_any(name);
    })
    .expect_err("the closure panics")
    .downcast::<String>()
    .expect("the namespace name");
    assert!(!netns_exists(&name), "{name} left behind after a panic");
}
