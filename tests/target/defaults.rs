//! `lab check --target FILE` with no scenarios named runs the folder
//! `scenarios/<FILE's name>/` beside the file, and says so when it is
//! missing.

use crate::harness::*;

#[test]
fn without_scenarios_the_folder_named_for_the_target_is_run() {
    let target = Target::toy("inline");
    let folder = target.folder().join("scenarios/inline");
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["a", "b"] {
        std::fs::write(
            folder.join(format!("{name}.toml")),
            format!(
                "name = \"{name}\"\norders = [{{ count = 1 }}]\n[expect]\ncharges_per_order = 1\n"
            ),
        )
        .unwrap();
    }
    let outcome = check(&target, &[], &[]);
    outcome.assert_passed();
    let json = outcome.json();
    let names: Vec<&str> = json["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"], "{}", outcome.explain());
}

#[test]
fn a_missing_default_folder_is_an_error() {
    let target = Target::toy("inline");
    let outcome = check(&target, &[], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.explain());
    let want = format!(
        "error: {}: no such file or directory",
        target.folder().join("scenarios/inline").display()
    );
    assert!(outcome.stderr.starts_with(&want), "{}", outcome.stderr);
}
