//! File names in requests (`record`, `pcap`, `ringback` of `POST /calls`) confined to the
//! directories the configuration names (`[media] record_dir`, `pcap_dir`, `ringback_dir`).
//!
//! A name is relative, has no `..`, no root or drive prefix, no NUL or other control
//! character, and names a file (not the directory itself); it is joined to its directory. A
//! name given while its directory is not configured is refused. A name the dialer will write
//! (`must_not_exist`) must not name anything that exists, not even a dangling symbolic link,
//! and its parent, with symbolic links resolved, must still be inside the directory, so a
//! link inside the directory cannot send a write elsewhere; the file itself is then opened
//! with `create_new`, so a file that appeared meanwhile is never truncated either. A name the
//! dialer only reads (a ringback) is confined lexically: links inside `ringback_dir` are the
//! administrator's own choice.
//!
//! Plain functions, no state: the API calls [`confine_request`] on every originate before the
//! dialer sees it.

use std::path::{Component, Path, PathBuf};

use crate::control::{ControlError, OriginateRequest};

/// The directories request paths are confined to; `None`: requests may not name such a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaDirs {
    /// `[media] record_dir`: where `record` files are created.
    pub record: Option<PathBuf>,
    /// `[media] ringback_dir`: where a request's `ringback` is looked up.
    pub ringback: Option<PathBuf>,
    /// `[media] pcap_dir`: where `pcap` files are created.
    pub pcap: Option<PathBuf>,
}

impl MediaDirs {
    /// The directories of a configuration's `[media]` table.
    pub fn from_config(media: &trunk_profiles::Media) -> MediaDirs {
        MediaDirs {
            record: media.record_dir.clone(),
            ringback: media.ringback_dir.clone(),
            pcap: media.pcap_dir.clone(),
        }
    }
}

/// A refused path: which request field, and what is wrong with it (never the server's full
/// path, so a refusal does not describe the server's file system).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct PathError {
    /// The request field: `record`, `pcap` or `ringback`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl From<PathError> for ControlError {
    fn from(e: PathError) -> ControlError {
        ControlError::BadPath {
            field: e.field,
            problem: e.problem,
        }
    }
}

/// `name` joined to `dir`, or why it may not be used. `field` names the request field (and
/// the `[media]` key in the refusal); `must_not_exist` for a file the dialer will create.
pub fn confine(
    dir: Option<&Path>,
    name: &Path,
    field: &str,
    must_not_exist: bool,
) -> Result<PathBuf, PathError> {
    let refuse = |problem: String| PathError {
        field: field.to_owned(),
        problem,
    };
    let key = format!("[media] {field}_dir");
    let Some(dir) = dir else {
        return Err(refuse(format!(
            "{key} is not configured: the dialer accepts no {field} file"
        )));
    };
    let bytes = name.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(refuse("empty name".into()));
    }
    if bytes.contains(&0) {
        return Err(refuse("contains NUL".into()));
    }
    if name.to_string_lossy().chars().any(char::is_control) {
        return Err(refuse("contains a control character".into()));
    }
    let mut files = 0;
    for component in name.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(refuse(format!(
                    "an absolute path: expected a name relative to {key}"
                )))
            }
            Component::ParentDir => {
                return Err(refuse(format!(
                    "contains `..`: expected a name inside {key}"
                )))
            }
            Component::CurDir => {}
            Component::Normal(_) => files += 1,
        }
    }
    // "." or "./": the directory itself, not a file in it.
    if files == 0
        || bytes.ends_with(b"/")
        || bytes.ends_with(std::path::MAIN_SEPARATOR_STR.as_bytes())
    {
        return Err(refuse(format!(
            "names a directory: expected a file name inside {key}"
        )));
    }
    let path = dir.join(name);
    if must_not_exist {
        if path.symlink_metadata().is_ok() {
            return Err(refuse(format!(
                "already exists in {key}: the dialer never overwrites a file"
            )));
        }
        let parent = path.parent().unwrap_or(dir);
        let inside = match (dir.canonicalize(), parent.canonicalize()) {
            (Ok(dir), Ok(parent)) => parent.starts_with(dir),
            _ => return Err(refuse(format!("its directory does not exist in {key}"))),
        };
        if !inside {
            return Err(refuse(format!("its directory is a link out of {key}")));
        }
    }
    Ok(path)
}

/// Confines the request's `record`, `pcap` and `ringback` to their directories, replacing
/// each with the joined path. A `ringback` must be an existing file; an absent one stays
/// absent (the dialer plays `[media] ringback`).
pub fn confine_request(request: &mut OriginateRequest, dirs: &MediaDirs) -> Result<(), PathError> {
    if let Some(name) = &request.record {
        request.record = Some(confine(dirs.record.as_deref(), name, "record", true)?);
    }
    if let Some(name) = &request.pcap {
        request.pcap = Some(confine(dirs.pcap.as_deref(), name, "pcap", true)?);
    }
    if let Some(name) = &request.ringback {
        let path = confine(dirs.ringback.as_deref(), name, "ringback", false)?;
        if !path.is_file() {
            return Err(PathError {
                field: "ringback".into(),
                problem: "no such file in [media] ringback_dir".into(),
            });
        }
        request.ringback = Some(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dialer-paths-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        dir
    }

    fn problem(dir: Option<&Path>, name: &str, must_not_exist: bool) -> String {
        let e = confine(dir, Path::new(name), "record", must_not_exist).unwrap_err();
        assert_eq!(e.field, "record");
        e.problem
    }

    #[test]
    fn a_relative_name_is_joined_to_its_directory() {
        let dir = scratch("join");
        let got = confine(Some(&dir), Path::new("sub/call-1.wav"), "record", true).unwrap();
        assert_eq!(got, dir.join("sub/call-1.wav"));
        let got = confine(Some(&dir), Path::new("./call-2.wav"), "record", true).unwrap();
        assert_eq!(got, dir.join("./call-2.wav"));
    }

    #[test]
    fn absolute_parent_nul_control_and_empty_names_are_refused() {
        let dir = scratch("refused");
        let d = Some(dir.as_path());
        assert!(problem(d, "/etc/passwd", true).contains("absolute"));
        assert!(problem(d, "../x.wav", true).contains("`..`"));
        assert!(problem(d, "sub/../../x.wav", false).contains("`..`"));
        assert!(problem(d, "a\0b", true).contains("NUL"));
        assert!(problem(d, "a\nb.wav", true).contains("control character"));
        assert!(problem(d, "", true).contains("empty"));
        assert!(problem(d, ".", true).contains("names a directory"));
        assert!(problem(d, "sub/", true).contains("names a directory"));
    }

    #[test]
    fn a_name_without_its_directory_configured_is_refused_naming_the_key() {
        let p = problem(None, "call.wav", true);
        assert!(p.contains("[media] record_dir is not configured"), "{p}");
        let e = confine(None, Path::new("x.pcap"), "pcap", true).unwrap_err();
        assert!(e.problem.contains("[media] pcap_dir"), "{e}");
    }

    #[test]
    fn an_existing_file_or_link_is_never_a_target_for_writing() {
        let dir = scratch("exists");
        std::fs::write(dir.join("old.wav"), b"keep me").unwrap();
        assert!(problem(Some(&dir), "old.wav", true).contains("already exists"));
        // Reading an existing file is fine.
        assert_eq!(
            confine(Some(&dir), Path::new("old.wav"), "ringback", false).unwrap(),
            dir.join("old.wav")
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/nonexistent/target", dir.join("dangling.wav")).unwrap();
            assert!(problem(Some(&dir), "dangling.wav", true).contains("already exists"));
        }
        assert_eq!(std::fs::read(dir.join("old.wav")).unwrap(), b"keep me");
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_subdirectory_cannot_send_a_write_outside() {
        let dir = scratch("link");
        let outside = scratch("link-outside");
        std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
        assert!(problem(Some(&dir), "out/x.wav", true).contains("link out of"));
        assert!(problem(Some(&dir), "missing/x.wav", true).contains("does not exist"));
    }

    #[test]
    fn a_request_gets_joined_paths_and_a_missing_ringback_is_refused() {
        let dir = scratch("request");
        std::fs::write(dir.join("tone.wav"), b"RIFF").unwrap();
        let dirs = MediaDirs {
            record: Some(dir.clone()),
            ringback: Some(dir.clone()),
            pcap: Some(dir.join("sub")),
        };
        let mut request = OriginateRequest {
            number: "1".into(),
            agent: Some("2".into()),
            record: Some("r.wav".into()),
            pcap: Some("c.pcap".into()),
            ringback: Some("tone.wav".into()),
            ..OriginateRequest::default()
        };
        confine_request(&mut request, &dirs).unwrap();
        assert_eq!(request.record, Some(dir.join("r.wav")));
        assert_eq!(request.pcap, Some(dir.join("sub/c.pcap")));
        assert_eq!(request.ringback, Some(dir.join("tone.wav")));

        let mut missing = OriginateRequest {
            ringback: Some("nope.wav".into()),
            ..OriginateRequest::default()
        };
        let e = confine_request(&mut missing, &dirs).unwrap_err();
        assert_eq!(e.field, "ringback");
        let mut none = OriginateRequest::default();
        confine_request(&mut none, &MediaDirs::default()).unwrap();
        assert_eq!(none, OriginateRequest::default());
    }
}
