//! Files through envd on the E2B data-plane rig: `/files` streamed both ways, the Filesystem
//! RPCs, E2B's paths and users, watches.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::data_rig::DataRig;
use crate::support::deadline;
use crate::support::e2b_rig::SANDBOX_ID;
use e2b_blocking::e2b::FileUrlOptions;
use e2b_blocking::{Error, FileType, FsEventKind};

#[test]
fn write_read_list_stat_rename_remove_with_e2b_paths() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = rig.sandbox();
        let files = sbx.files();
        let info = files.write("/home/user/dir/a.txt", "alpha").unwrap();
        assert_eq!(info.path, "/home/user/dir/a.txt");
        assert_eq!(info.size, Some(5));
        // Relative paths are relative to the user's home, as envd resolves them.
        assert_eq!(files.read("dir/a.txt").unwrap(), "alpha");
        assert_eq!(
            std::fs::read_to_string(rig.host_path("/home/user/dir/a.txt")).unwrap(),
            "alpha"
        );
        files
            .write("/tmp/e2b-plane-outside.bin", [0u8, 1, 2])
            .unwrap();
        assert_eq!(
            files.read_bytes("/tmp/e2b-plane-outside.bin").unwrap(),
            [0, 1, 2]
        );
        files.remove("/tmp/e2b-plane-outside.bin").unwrap();
        let written = files
            .write_many([("dir/b.bin", &b"\x00\x01"[..]), ("dir/sub/c.txt", b"c")])
            .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(written[1].path, "/home/user/dir/sub/c.txt");
        let names: Vec<String> = files
            .list("dir")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["a.txt", "b.bin", "sub"]);
        let deep = files.list_depth("/home/user/dir", 2).unwrap();
        assert!(
            deep.iter().any(|e| e.path == "/home/user/dir/sub/c.txt"),
            "{deep:?}"
        );
        let sub = deep.iter().find(|e| e.name == "sub").unwrap();
        assert_eq!((sub.kind, sub.size), (FileType::Dir, None));
        let info = files.get_info("dir/a.txt").unwrap();
        assert_eq!((info.kind, info.size), (FileType::File, Some(5)));
        assert!(info.modified.is_some());
        assert!(files.exists("dir/a.txt").unwrap());
        assert!(!files.exists("dir/nope").unwrap());
        let moved = files.rename("dir/a.txt", "dir/moved/a.txt").unwrap();
        assert_eq!(moved.path, "/home/user/dir/moved/a.txt");
        assert!(files.make_dir("dir/new/deeper").unwrap());
        assert!(!files.make_dir("dir/new/deeper").unwrap());
        assert!(matches!(
            files.make_dir("dir/b.bin"),
            Err(Error::NotADirectory { .. })
        ));
        files.remove("dir/moved").unwrap();
        files.remove("dir/moved").unwrap();
        assert!(!files.exists("dir/moved").unwrap());
        assert!(matches!(
            files.read("dir/nope"),
            Err(Error::FileNotFound { path }) if path == "dir/nope"
        ));
        assert!(matches!(files.read("dir"), Err(Error::IsADirectory { .. })));
        assert!(matches!(
            files.list("dir/b.bin"),
            Err(Error::NotADirectory { .. })
        ));
        assert!(matches!(
            files.list_depth("dir", 0),
            Err(Error::InvalidArgument(_))
        ));
    });
}

#[test]
fn users_are_envds_and_an_unknown_one_is_refused() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = rig.sandbox();
        let root = sbx.files().as_user("root");
        let info = root.write("as-root.txt", "r").unwrap();
        // Relative to root's home (/root on E2B; /home/root in the rig, see tests/rig/envd.py).
        assert_eq!(info.path, "/home/root/as-root.txt");
        assert_eq!(root.read("/home/root/as-root.txt").unwrap(), "r");
        let err = sbx
            .files()
            .as_user("nobody-here")
            .write("x", "x")
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        let err = sbx.files().as_user("nobody-here").list("/").unwrap_err();
        assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
    });
}

/// A reader of `len` pseudo-random bytes that never holds them all.
struct Generated {
    left: u64,
    state: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for b in &mut buf[..n] {
            self.state = self.state.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (self.state >> 33) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn large_files_stream_both_ways_with_progress() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = rig.sandbox();
        let len = 48u64 << 20;
        let mut reports = 0;
        let info = sbx
            .files()
            .upload("big.bin")
            .on_progress(|_, _| reports += 1)
            .reader(Generated {
                left: len,
                state: 7,
            })
            .unwrap();
        assert_eq!(info.size, Some(len));
        assert!(reports > 1);
        let mut expected = Generated {
            left: len,
            state: 7,
        };
        let mut got_total = None;
        let mut checked = Checker {
            expected: &mut expected,
            seen: 0,
        };
        let n = sbx
            .files()
            .download("/home/user/big.bin")
            .on_progress(|_, total| got_total = total)
            .to_writer(&mut checked)
            .unwrap();
        assert_eq!((n, checked.seen, got_total), (len, len, Some(len)));
    });
}

/// A sink that compares what it is given with a generator's bytes, holding none of them.
struct Checker<'a> {
    expected: &'a mut Generated,
    seen: u64,
}

impl std::io::Write for Checker<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut want = vec![0u8; buf.len()];
        self.expected.read_exact(&mut want)?;
        assert!(want == buf, "byte mismatch after {} bytes", self.seen);
        self.seen += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn watch_dir_reports_changes_recursively() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = rig.sandbox();
        sbx.files().make_dir("watched/sub").unwrap();
        let mut watch = sbx.files().watch_dir("watched", true).unwrap();
        sbx.files().write("watched/sub/new.txt", "n").unwrap();
        sbx.files().remove("watched/sub/new.txt").unwrap();
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|(k, _)| *k == FsEventKind::Remove) && Instant::now() < until {
            if let Some(e) = watch.next_timeout(Duration::from_millis(200)).unwrap() {
                seen.push((e.kind, e.path));
            }
        }
        assert!(
            seen.contains(&(FsEventKind::Create, "sub/new.txt".into())),
            "{seen:?}"
        );
        assert!(
            seen.contains(&(FsEventKind::Remove, "sub/new.txt".into())),
            "{seen:?}"
        );
        watch.stop().unwrap();
        assert!(matches!(
            sbx.files().watch_dir("watched/missing", false),
            Err(Error::FileNotFound { .. })
        ));
    });
}

/// The query of a URL the SDK signed, sent to the rig's envd through its proxy (the URL's own
/// host is E2B's, which a test does not reach): `GET`, or `POST` with a multipart `body`.
fn send_signed(rig: &DataRig, url: &str, body: Option<&str>) -> (u16, String) {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let target = format!("{}/files?{query}", rig.proxy.url());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let answer = match body {
        None => agent
            .get(&target)
            .header("E2b-Sandbox-Id", SANDBOX_ID)
            .header("E2b-Sandbox-Port", "49983")
            .call(),
        Some(text) => {
            let boundary = "e2b-signed-upload";
            let form = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"up.txt\"\r\nContent-Type: application/octet-stream\r\n\r\n\
                 {text}\r\n--{boundary}--\r\n"
            );
            agent
                .post(&target)
                .header("E2b-Sandbox-Id", SANDBOX_ID)
                .header("E2b-Sandbox-Port", "49983")
                .header(
                    "Content-Type",
                    &format!("multipart/form-data; boundary={boundary}"),
                )
                .send(form)
        }
    };
    let mut answer = answer.unwrap();
    let status = answer.status().as_u16();
    (
        status,
        answer.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// E2B issue 23, item 7: what the SDK signs (E2B's `v1` scheme) envd accepts with no other
/// credentials, for reading and writing, and refuses once tampered with or for another path.
#[test]
fn signed_file_urls_are_accepted_by_envd_and_tampering_is_refused() {
    deadline(|| {
        let rig = DataRig::start();
        let sbx = rig.sandbox();
        sbx.files()
            .write("/home/user/signed.txt", "signed")
            .unwrap();
        let e2b = sbx.as_e2b().unwrap();
        let options = FileUrlOptions::new().expires_in(Duration::from_secs(300));
        let down = e2b.download_url("/home/user/signed.txt", &options).unwrap();
        assert!(down.contains("signature=v1_"), "{down}");
        assert_eq!(send_signed(&rig, &down, None), (200, "signed".into()));
        let tampered = down.replace("signed.txt", "other.txt");
        assert_eq!(send_signed(&rig, &tampered, None).0, 401);
        let unsigned = down.split("&signature=").next().unwrap().to_string();
        assert_eq!(send_signed(&rig, &unsigned, None).0, 401);
        let up = e2b
            .upload_url("/home/user/uploaded.txt", &FileUrlOptions::new())
            .unwrap();
        assert_eq!(send_signed(&rig, &up, Some("uploaded")).0, 200);
        assert_eq!(
            sbx.files().read("/home/user/uploaded.txt").unwrap(),
            "uploaded"
        );
        // A read URL does not write.
        assert_eq!(send_signed(&rig, &down, Some("overwritten")).0, 401);
    });
}
