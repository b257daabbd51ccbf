//! References as capabilities: what one attempt may open.
//!
//! An attempt may open a reference only when it appears in its inputs or the attempt created it
//! (later: when a task it called returned it). A directory grant covers the files under it, by
//! names that stay inside it. A URI string the guest made up, or copied from elsewhere, is
//! refused whatever it points at.

use std::collections::HashSet;

use super::DataError;

/// What a granted URI gives access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A file (or directory) granted by its exact URI.
    Whole,
    /// A file inside a granted directory: the directory's URI and the entry's relative name.
    DirEntry { dir: String, name: String },
}

/// The references one attempt holds.
#[derive(Debug, Default, Clone)]
pub struct Grants {
    exact: HashSet<String>,
    dirs: HashSet<String>,
}

impl Grants {
    pub fn grant_file(&mut self, uri: &str) {
        self.exact.insert(uri.to_string());
    }

    pub fn grant_dir(&mut self, uri: &str) {
        let uri = uri.trim_end_matches('/');
        self.exact.insert(uri.to_string());
        self.dirs.insert(uri.to_string());
    }

    /// How `uri` may be opened, or `not granted`.
    pub fn check(&self, uri: &str) -> Result<Access, DataError> {
        if self.exact.contains(uri) {
            return Ok(Access::Whole);
        }
        // Longest granted directory first would only matter for nested grants, which give the
        // same access either way; any match will do.
        for dir in &self.dirs {
            if let Some(rest) = uri
                .strip_prefix(dir.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                check_relative_name(rest).map_err(|reason| DataError::NotGranted {
                    uri: uri.to_string(),
                    reason,
                })?;
                return Ok(Access::DirEntry {
                    dir: dir.clone(),
                    name: rest.to_string(),
                });
            }
        }
        Err(DataError::NotGranted {
            uri: uri.to_string(),
            reason: "not in this attempt's inputs and not created by it".to_string(),
        })
    }
}

/// Checks a name inside a directory: relative, '/'-separated, no empty, '.' or '..' segments, no
/// backslashes or NULs. Such a name cannot leave its directory by its spelling (symbolic links
/// are refused where files are opened).
pub fn check_relative_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if name.starts_with('/') {
        return Err(format!("{name:?} is absolute"));
    }
    if name.contains('\\') || name.contains('\0') {
        return Err(format!("{name:?} contains a backslash or NUL"));
    }
    if let Some(bad) = name
        .split('/')
        .find(|seg| seg.is_empty() || *seg == "." || *seg == "..")
    {
        return Err(format!("{name:?} has a {bad:?} segment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_directory_grants_and_nothing_else() {
        let mut g = Grants::default();
        g.grant_file("file:///s/p/d/r/a0/1/x.csv");
        g.grant_dir("file:///s/p/d/up/dir/");
        assert_eq!(
            g.check("file:///s/p/d/r/a0/1/x.csv").unwrap(),
            Access::Whole
        );
        assert_eq!(
            g.check("file:///s/p/d/up/dir/a/b.txt").unwrap(),
            Access::DirEntry {
                dir: "file:///s/p/d/up/dir".into(),
                name: "a/b.txt".into()
            }
        );
        for bad in [
            "file:///s/p/d/r/a0/1/y.csv",
            "file:///s/p/d/up/dir/../secret",
            "file:///s/p/d/up/dir/./a",
            "file:///s/p/d/up/dir//a",
            "file:///s/p/d/up/dirx/a",
            "file:///etc/passwd",
        ] {
            let err = g.check(bad).unwrap_err();
            assert!(err.to_string().contains("not granted"), "{bad}: {err}");
        }
    }
}
