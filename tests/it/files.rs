//! sandbox.files() against a real local jupyter_server: round trips (text, binary, 50 MB),
//! listing, rename, remove, directories, dotfiles, paths above the root and typed errors.
//! (Absolute paths, `/tmp` and planted links: `files_paths`.)

use std::cell::RefCell;
use std::io::Write;

use crate::support::{deadline, local};
use e2b_blocking::{Error, FileType};

/// Deterministic pseudo-random bytes (xorshift64*), so failures are reproducible.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a over everything written to it.
struct Fnv(u64, u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325, 0)
    }
    fn of(data: &[u8]) -> (u64, u64) {
        let mut h = Fnv::new();
        h.write_all(data).unwrap();
        (h.0, h.1)
    }
}

impl Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn text_round_trip_list_rename_and_remove() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        // Parents are created as needed.
        let info = files.write("notes/day 1/a.txt", "héllo\n").unwrap();
        assert_eq!(info.path, "notes/day 1/a.txt");
        assert_eq!(info.kind, FileType::File);
        assert_eq!(files.read("notes/day 1/a.txt").unwrap(), "héllo\n");
        // The same file, opened from the host.
        let mut on_disk = String::new();
        std::io::Read::read_to_string(
            &mut sbx.as_local().unwrap().open("notes/day 1/a.txt").unwrap(),
            &mut on_disk,
        )
        .unwrap();
        assert_eq!(on_disk, "héllo\n");
        // Overwrite.
        files.write("notes/day 1/a.txt", "second").unwrap();
        assert_eq!(files.read("notes/day 1/a.txt").unwrap(), "second");

        files.write("notes/b.bin", [0u8, 1, 2, 255]).unwrap();
        let listing = files.list("notes").unwrap();
        let names: Vec<&str> = listing.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b.bin", "day 1"]);
        assert_eq!(listing[0].kind, FileType::File);
        assert_eq!(listing[0].size, Some(4));
        assert_eq!(listing[0].path, "notes/b.bin");
        assert!(listing[0].modified.is_some());
        assert!(listing[1].is_dir());
        assert_eq!(listing[1].size, None);
        let root: Vec<String> = files
            .list("")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(root.contains(&"notes".to_string()), "{root:?}");

        // Rename into a directory that does not exist yet.
        let moved = files
            .rename("notes/day 1/a.txt", "archive/2024/a.txt")
            .unwrap();
        assert_eq!(moved.path, "archive/2024/a.txt");
        assert!(!files.exists("notes/day 1/a.txt").unwrap());
        assert_eq!(files.read("archive/2024/a.txt").unwrap(), "second");

        files.remove("archive/2024/a.txt").unwrap();
        assert!(!files.exists("archive/2024/a.txt").unwrap());
        // A non-empty directory goes with its contents.
        files.remove("notes").unwrap();
        assert!(!files.exists("notes/b.bin").unwrap());
        assert!(files.exists("archive").unwrap());
    });
}

#[test]
fn binary_round_trips_byte_identical_including_50_mb() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        let all: Vec<u8> = (0..=255u8).collect();
        files.write("bin/all.bin", &all).unwrap();
        assert_eq!(files.read_bytes("bin/all.bin").unwrap(), all);
        assert!(matches!(
            files.read("bin/all.bin"),
            Err(Error::InvalidArgument(_))
        ));

        let big = random_bytes(50 << 20, 0x5eed);
        let progress = RefCell::new(Vec::new());
        let info = files
            .upload("bin/big.bin")
            .on_progress(|done, total| progress.borrow_mut().push((done, total)))
            .bytes(&big)
            .unwrap();
        assert_eq!(info.size, Some(big.len() as u64));
        let progress = progress.into_inner();
        assert!(progress.len() > 1, "chunked: {progress:?}");
        assert_eq!(
            progress.last(),
            Some(&(big.len() as u64, Some(big.len() as u64)))
        );
        assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));

        // Down into memory: byte-identical.
        let back = files.read_bytes("bin/big.bin").unwrap();
        assert!(back.len() == big.len() && back == big, "50 MB differs");
        drop(back);
        // Down into a sink, with progress: same hash.
        let mut sink = Fnv::new();
        let mut calls = 0;
        let n = files
            .download("bin/big.bin")
            .on_progress(|_, total| {
                assert_eq!(total, Some(big.len() as u64));
                calls += 1;
            })
            .to_writer(&mut sink)
            .unwrap();
        assert_eq!(n, big.len() as u64);
        assert!(calls > 1);
        assert_eq!((sink.0, sink.1), Fnv::of(&big));
    });
}

#[test]
fn readers_upload_in_chunks_at_every_boundary() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        // Empty, below, exactly at, just above, and an exact multiple of the chunk size.
        for len in [0usize, 999, 1000, 1001, 3000, 10_500] {
            let data = random_bytes(len, len as u64 + 7);
            let path = format!("chunks/{len}.bin");
            let mut last = None;
            let info = files
                .upload(&path)
                .chunk_size(1000)
                .on_progress(|done, total| last = Some((done, total)))
                .reader(&data[..])
                .unwrap();
            assert_eq!(info.size, Some(len as u64), "{len}");
            assert_eq!(last, Some((len as u64, None)), "{len}");
            assert_eq!(files.read_bytes(&path).unwrap(), data, "{len}");
        }
        // A chunked upload over an existing, longer file replaces it.
        files.write("chunks/over.bin", vec![9u8; 5000]).unwrap();
        let data = random_bytes(2500, 1);
        files
            .upload("chunks/over.bin")
            .chunk_size(1000)
            .bytes(&data)
            .unwrap();
        assert_eq!(files.read_bytes("chunks/over.bin").unwrap(), data);
        // Local files both ways.
        let dir = std::env::temp_dir().join(format!("e2b-files-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let local_in = dir.join("in.bin");
        std::fs::write(&local_in, &data).unwrap();
        files
            .upload("chunks/from-file.bin")
            .chunk_size(1000)
            .file(&local_in)
            .unwrap();
        let local_out = dir.join("out.bin");
        let n = files
            .download("chunks/from-file.bin")
            .to_file(&local_out)
            .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(std::fs::read(&local_out).unwrap(), data);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn dotfiles_and_directories() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        files.write(".env", "KEY=value\n").unwrap();
        assert_eq!(files.read(".env").unwrap(), "KEY=value\n");
        files.write("app/.config/settings", "x").unwrap();
        let names: Vec<String> = files
            .list("")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&".env".to_string()), "{names:?}");

        assert!(files.make_dir("a/b/c").unwrap());
        assert!(!files.make_dir("a/b/c").unwrap());
        assert!(files.get_info("a/b").unwrap().is_dir());
        assert!(matches!(
            files.make_dir(".env"),
            Err(Error::NotADirectory { .. })
        ));
        assert!(files.exists("").unwrap());
        assert!(files.exists("./a/../a/b").unwrap());
    });
}

/// `..` above the root means what it means to code: in the isolated sandbox a path of the
/// sandbox, never of the host, whose directory next to the root stays out of reach.
#[test]
fn paths_above_the_root_are_the_sandbox_s_not_the_host_s() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        let root = sbx.as_local().unwrap().root().to_path_buf();
        // A file just outside the root on the host, which a working escape would reach.
        let outside = root.parent().unwrap().join("outside.txt");
        std::fs::write(&outside, "secret").unwrap();
        let host_path = outside.display().to_string();
        for path in ["../outside.txt", "a/../../outside.txt", host_path.as_str()] {
            assert!(
                matches!(files.read(path), Err(Error::FileNotFound { .. })),
                "{path}: {:?}",
                files.read(path)
            );
            files.remove(path).unwrap();
        }
        // The host's path names a file in the sandbox's own /tmp.
        files.write(&host_path, "inside").unwrap();
        let exec = sbx.run_code(format!("open({host_path:?}).read()")).unwrap();
        assert_eq!(exec.text(), Some("'inside'"));
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
        assert_eq!(files.get_info("..").unwrap().path, "/home");
        for held in ["", "..", "/home/user/.."] {
            assert!(matches!(files.remove(held), Err(Error::InvalidArgument(_))));
        }
    });
}

#[test]
fn missing_paths_and_wrong_kinds_are_typed_errors() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        let not_found = |r: Result<_, Error>| match r {
            Err(Error::FileNotFound { path }) => path,
            other => panic!("expected FileNotFound, got {:?}", other.map(|_: ()| ())),
        };
        assert_eq!(not_found(files.read("nope.txt").map(drop)), "nope.txt");
        assert_eq!(
            not_found(files.read_bytes("no/such/file").map(drop)),
            "no/such/file"
        );
        assert_eq!(not_found(files.get_info("nope.txt").map(drop)), "nope.txt");
        files.remove("nope.txt").unwrap();
        assert_eq!(not_found(files.list("nope").map(drop)), "nope");
        assert_eq!(
            not_found(files.rename("nope.txt", "x.txt").map(drop)),
            "nope.txt"
        );
        assert!(!files.exists("nope.txt").unwrap());

        files.write("file.txt", "x").unwrap();
        files.make_dir("dir").unwrap();
        assert!(matches!(
            files.list("file.txt"),
            Err(Error::NotADirectory { .. })
        ));
        assert!(matches!(
            files.write("file.txt/child.txt", "x"),
            Err(Error::NotADirectory { .. })
        ));
        assert!(matches!(files.read("dir"), Err(Error::IsADirectory { .. })));
        assert!(matches!(files.read(""), Err(Error::IsADirectory { .. })));
        assert!(matches!(
            files.write("dir", "x"),
            Err(Error::IsADirectory { .. })
        ));
        // Renaming onto an existing file is refused by jupyter_server (409).
        files.write("other.txt", "y").unwrap();
        assert!(matches!(
            files.rename("file.txt", "other.txt"),
            Err(Error::Http { status: 409, .. })
        ));
    });
}

/// `write_many` writes every file (nested, binary, hidden, one larger than a batch) and
/// returns their entries in order; a failing write names its path and keeps earlier files.
#[test]
fn write_many_writes_all_and_names_the_failing_path() {
    deadline(|| {
        let sbx = local();
        let files = sbx.files();
        let big = random_bytes(5 << 20, 7);
        let binary = vec![0u8, 159, 146, 150, 255];
        let written = files
            .write_many([
                ("many/a.txt", b"A".as_slice()),
                ("many/deep/b.bin", binary.as_slice()),
                ("many/.hidden", b"h".as_slice()),
                ("many/big.bin", big.as_slice()),
                ("many/c.txt", b"".as_slice()),
            ])
            .unwrap();
        let paths: Vec<&str> = written.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "many/a.txt",
                "many/deep/b.bin",
                "many/.hidden",
                "many/big.bin",
                "many/c.txt"
            ]
        );
        assert_eq!(written[1].size, Some(5));
        assert_eq!(written[1].kind, FileType::File);
        assert_eq!(files.read("many/a.txt").unwrap(), "A");
        assert_eq!(files.read_bytes("many/deep/b.bin").unwrap(), binary);
        assert_eq!(files.read("many/.hidden").unwrap(), "h");
        assert_eq!(files.read_bytes("many/big.bin").unwrap(), big);
        assert_eq!(files.read("many/c.txt").unwrap(), "");
        let none: [(&str, &str); 0] = [];
        assert!(files.write_many(none).unwrap().is_empty());

        // The root is no file: refused before anything is written.
        let root = files.write_many([("many/first.txt", "1"), ("/home/user", "2")]);
        match root {
            Err(Error::IsADirectory { path }) => assert_eq!(path, "/home/user"),
            other => panic!("{other:?}"),
        }
        assert!(!files.exists("many/first.txt").unwrap());

        // A directory in the way: the earlier file stays, the error names the directory.
        let err = files
            .write_many([("many/first.txt", "1"), ("many/deep", "2")])
            .unwrap_err();
        match err {
            Error::IsADirectory { path } => assert_eq!(path, "many/deep"),
            other => panic!("expected IsADirectory, got {other:?}"),
        }
        assert_eq!(files.read("many/first.txt").unwrap(), "1");
    });
}
