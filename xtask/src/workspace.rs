//! Where the workspace and its target directory are.

use crate::command::Cmd;
use crate::failure::Failure;
use std::path::{Path, PathBuf};

/// The workspace root: xtask's own manifest sits one level below it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent directory")
        .to_path_buf()
}

/// The target directory cargo uses for this workspace (`target/` unless
/// `CARGO_TARGET_DIR` or a cargo config says otherwise), as `cargo metadata`
/// reports it.
pub fn target_dir() -> Result<PathBuf, Failure> {
    let root = root();
    let json = Cmd::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .dir(&root)
        .capture()
        .map_err(|e| Failure::new(format!("cannot ask cargo for the target directory: {e}")))?;
    json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| Failure::new("`cargo metadata` printed no target_directory"))
}

/// Shows `path` relative to the workspace root when it is inside it.
pub fn display(path: &Path) -> String {
    match path.strip_prefix(root()) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The value of the first `"key":"value"` pair in a JSON text (enough for
/// cargo metadata's top-level path fields; handles backslash escapes of `"`
/// and `\`, which are the only ones a path can need).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_string_field_with_escapes() {
        let json = r#"{"packages":[],"target_directory":"/a/b\\c\"d","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/a/b\\c\"d")
        );
        assert_eq!(json_string_field(json, "missing"), None);
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
