//! The `vqvae` binary end to end, on data each test writes to a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vqvae(args: &[&str]) -> Output {
    vqvae_with(args, &[])
}

/// [`vqvae`] with extra environment variables.
fn vqvae_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vqvae"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the vqvae binary runs")
}

/// Starts `vqvae ARGS` in the background, its output captured.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_vqvae"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the vqvae binary starts")
}

/// Polls `ready` every `every` until it holds; fails naming `what` after 60 s.
fn wait_until(what: &str, every: std::time::Duration, ready: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(
            started.elapsed().as_secs() < 60,
            "{what} did not happen in 60 s"
        );
        std::thread::sleep(every);
    }
}

fn ok(args: &[&str]) -> String {
    let out = vqvae(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vqvae {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`ok`], returning stderr (progress messages) followed by stdout.
fn ok_logged(args: &[&str]) -> String {
    let out = vqvae(args);
    let text = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "vqvae {args:?} failed:\n{text}");
    text.into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = vqvae(args);
    assert!(!out.status.success(), "vqvae {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "vqvae {args:?} panicked:\n{stderr}"
    );
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A folder of `count` procedural 24×24 PNGs.
fn images(dir: &Path, count: usize) -> PathBuf {
    let folder = dir.join("images");
    datasets::write_procedural_folder(&folder, 7, count, 24).expect("writes PNGs");
    folder
}

/// `vqvae train --preset tiny` on `data` for `steps` steps into `run`.
fn train_tiny(data: &Path, steps: u32, run: &Path) {
    ok(&tiny_args(data, &steps.to_string(), run));
}

/// The arguments of `vqvae train --preset tiny --data DATA --max-steps STEPS --out RUN`.
fn tiny_args<'a>(data: &'a Path, steps: &'a str, run: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--preset",
        "tiny",
        "--data",
        s(data),
        "--max-steps",
        steps,
        "--out",
        s(run),
    ]
}

/// `(step, loss columns)` of a run's metrics.csv, throughput dropped.
fn trajectory(run: &Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split(',').collect();
            (cols[0].parse().unwrap(), cols[..8].join(","))
        })
        .collect()
}

#[test]
fn tiny_preset_overfits_a_handful_of_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 4);
    let run = dir.path().join("run");
    let out = ok(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        s(&data),
        "--val",
        s(&data),
        "--max-steps",
        "300",
        "--out",
        s(&run),
    ]);
    assert!(out.contains("finished after 300 steps"), "{out}");
    let rows = trajectory(&run);
    let psnr = |row: &(u64, String)| {
        let mse: f64 = row.1.split(',').nth(3).unwrap().parse().unwrap();
        10.0 * (4.0 / mse).log10() // images in [−1, 1]: data range 2
    };
    let first = psnr(&rows[0]);
    let last = rows[rows.len() - 10..].iter().map(psnr).sum::<f64>() / 10.0;
    assert!(
        last > first + 6.0,
        "training PSNR {first:.2} → {last:.2} dB"
    );
    assert!(run.join("samples/step-00000300.png").is_file());
    assert!(run.join("latest").is_file() && run.join("config.json").is_file());
}

/// Validation figures that are training figures are said to be: `--val` the `--data` folder,
/// `data.holdout = 0`, and a holdout the folder cannot give (each was silent).
#[test]
fn validation_on_training_images_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 3);
    let train = |name: &str, extra: &[&str]| {
        let run = dir.path().join(name);
        let mut args = vec![
            "train",
            "--preset",
            "tiny",
            "--data",
            s(&data),
            "--max-steps",
            "1",
        ];
        args.extend_from_slice(extra);
        args.extend(["--out", s(&run)]);
        ok_logged(&args)
    };
    let text = train("same", &["--val", s(&data)]);
    assert!(
        text.contains(
            "validation images are training images, so the validation figures are \
             training figures"
        ),
        "{text}"
    );
    for (holdout, expected) in [
        ("0", "validating on the training images (data.holdout = 0)"),
        (
            "5",
            "data.holdout (5) is more than 3 images allow: holding out 2 and training on 1",
        ),
    ] {
        let config = dir.path().join(format!("h{holdout}.toml"));
        std::fs::write(&config, format!("[data]\nholdout = {holdout}\n")).unwrap();
        let text = train(&format!("h{holdout}"), &["--config", s(&config)]);
        assert!(text.contains(expected), "holdout {holdout}: {text}");
    }
    // The tiny preset's batch is 4: 3 images less 1 held out leave 2.
    let text = train("plain", &[]);
    assert!(
        text.contains(
            "note: holding out 1 of 3 images leaves 2 for training, fewer than a batch (4)"
        ),
        "{text}"
    );
    let text = train("batch2", &["--batch-size", "2"]);
    assert!(!text.contains("note: "), "{text}");
    // Files the folder scan passes over are counted, so a folder of other formats is noticed.
    std::fs::write(data.join("photo.webp"), b"").unwrap();
    let text = train("webp", &["--batch-size", "2"]);
    assert!(
        text.contains("note: --data: 1 other file was not read (.webp: 1)"),
        "{text}"
    );
    std::fs::remove_file(data.join("photo.webp")).unwrap();
    // 22 validation images at a 4096² side would take 4.1 GiB (30 such aborted before): refused
    // before any is decoded, naming --val.
    let many = images(&dir.path().join("many"), 22);
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        s(&data),
        "--val",
        s(&many),
        "--resize",
        "4096",
        "--out",
        s(&dir.path().join("big")),
    ]);
    assert!(
        err.contains(&format!(
            "22 validation images (--val {}) at a 4096² validation side would take 4.1 GiB",
            many.display()
        )),
        "{err}"
    );
}

#[test]
fn resuming_continues_the_same_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 6);
    let straight = dir.path().join("straight");
    let resumed = dir.path().join("resumed");
    let common = ["train", "--preset", "tiny", "--data", s(&data)];
    ok(&[&common[..], &["--max-steps", "16", "--out", s(&straight)]].concat());
    ok(&[&common[..], &["--max-steps", "8", "--out", s(&resumed)]].concat());
    // Without --resume an existing run is never overwritten.
    let err = fails(&[&common[..], &["--max-steps", "16", "--out", s(&resumed)]].concat());
    assert!(err.contains("already holds a run"), "{err}");
    ok(&[
        &common[..],
        &["--max-steps", "16", "--resume", "--out", s(&resumed)],
    ]
    .concat());
    assert_eq!(trajectory(&straight), trajectory(&resumed));
    // `--resume` without `--data` continues on the run's images (sources.json), not on the
    // procedural set: the same trajectory again.
    let no_data = dir.path().join("no-data");
    ok(&[&common[..], &["--max-steps", "8", "--out", s(&no_data)]].concat());
    let resume_without_data = || {
        ok_logged(&[
            "train",
            "--preset",
            "tiny",
            "--max-steps",
            "16",
            "--resume",
            "--out",
            s(&no_data),
        ])
    };
    let text = resume_without_data();
    assert!(text.contains("--data of the run"), "{text}");
    assert!(!text.contains("now holds"), "{text}");
    assert_eq!(trajectory(&straight), trajectory(&no_data));
    // A resume whose limits are already reached says so instead of finishing silently.
    let text = resume_without_data();
    assert!(
        text.contains("nothing to train: the run is at step 16"),
        "{text}"
    );
    assert_eq!(trajectory(&straight), trajectory(&no_data));
    // Resuming with another network is refused, naming the difference.
    let err = fails(
        &[
            &common[..],
            &["--attention", "none", "--resume", "--out", s(&resumed)],
        ]
        .concat(),
    );
    assert!(err.contains("different configuration"), "{err}");
    let err = fails(
        &[
            &common[..],
            &["--sampling-norm", "false", "--resume", "--out", s(&resumed)],
        ]
        .concat(),
    );
    assert!(
        err.contains("different configuration")
            && err.contains("model.sampling_norm: true → false"),
        "{err}"
    );
    // Another preset is refused, not silently replaced by the stored one; a TOML file applies
    // over the stored configuration, so a model field in it is a named difference.
    let err = fails(&[
        "train",
        "--preset",
        "small",
        "--resume",
        "--out",
        s(&resumed),
    ]);
    assert!(
        err.contains("trained with --preset tiny, not small"),
        "{err}"
    );
    let toml = dir.path().join("codes.toml");
    std::fs::write(&toml, "[model]\nnum_codes = 16\n").unwrap();
    let err = fails(&[
        "train",
        "--config",
        s(&toml),
        "--resume",
        "--out",
        s(&resumed),
    ]);
    assert!(err.contains("model.num_codes: 32 → 16"), "{err}");
}

/// A resume on a folder whose images changed says so: the batches follow the image list, so
/// the run no longer continues the trajectory it started.
#[test]
fn a_resume_on_changed_images_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 5);
    let run = dir.path().join("run");
    train_tiny(&data, 2, &run);
    let resume = |steps: &str| {
        ok_logged(&[
            "train",
            "--preset",
            "tiny",
            "--max-steps",
            steps,
            "--resume",
            "--out",
            s(&run),
        ])
    };
    let text = resume("3");
    assert!(!text.contains("now holds"), "{text}");
    std::fs::copy(data.join("proc_00000.png"), data.join("extra.png")).unwrap();
    let text = resume("4");
    assert!(
        text.contains("note: --data now holds 6 images where the run had 5"),
        "{text}"
    );
    // The record follows the folder: the next resume compares with 6 images.
    std::fs::rename(data.join("extra.png"), data.join("renamed.png")).unwrap();
    let text = resume("5");
    assert!(
        text.contains("note: --data now holds other images under the same count (6)"),
        "{text}"
    );
    let text = resume("6");
    assert!(!text.contains("now holds"), "{text}");
}

/// A `--data` folder whose symbolic link reaches the run folder (the folder holding it, here)
/// is refused before a step: the scan would read the run's sample grids as training images.
/// A link elsewhere is followed as before.
#[cfg(unix)]
#[test]
fn a_data_folder_linking_to_the_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 5);
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    std::os::unix::fs::symlink(&runs, data.join("more")).unwrap();
    let run = runs.join("r1");
    let err = fails(&tiny_args(&data, "1", &run));
    assert!(
        err.contains("reaches --out") && err.contains("through its link to"),
        "{err}"
    );
    assert!(!run.join("step-00000001").exists());
    let elsewhere = images(&dir.path().join("elsewhere"), 2);
    std::fs::remove_file(data.join("more")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, data.join("more")).unwrap();
    train_tiny(&data, 1, &dir.path().join("r2"));
}

/// The values of the metrics.csv column named `name`, one per step.
fn column(run: &Path, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    lines
        .map(|line| line.split(',').nth(at).expect("a full row").to_string())
        .collect()
}

#[test]
fn a_finished_run_continues_with_a_decay_phase() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 6);
    let common = ["train", "--preset", "tiny", "--data", s(&data)];
    let decay = ["--lr-decay", "linear", "--decay-start", "6"];
    // Straight through: 10 steps, constant for 6, then a linear decay to 0 at the last step.
    let straight = dir.path().join("straight");
    ok(&[
        &common[..],
        &decay[..],
        &["--max-steps", "10", "--out", s(&straight)],
    ]
    .concat());
    let rates: Vec<f64> = column(&straight, "learning_rate")
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let expected = [3e-3, 3e-3, 3e-3, 3e-3, 3e-3, 3e-3, 3e-3, 2e-3, 1e-3, 0.0];
    assert_eq!(rates.len(), expected.len());
    for (got, want) in rates.iter().zip(expected) {
        assert!((got - want).abs() < 1e-9, "{rates:?}");
    }
    // A constant 6-step run continued with the decay phase follows the same trajectory.
    let continued = dir.path().join("continued");
    ok(&[&common[..], &["--max-steps", "6", "--out", s(&continued)]].concat());
    ok(&[
        &common[..],
        &decay[..],
        &["--max-steps", "10", "--resume", "--out", s(&continued)],
    ]
    .concat());
    assert_eq!(trajectory(&straight), trajectory(&continued));
    assert_eq!(
        column(&straight, "learning_rate"),
        column(&continued, "learning_rate")
    );
    let config = std::fs::read_to_string(continued.join("config.json")).unwrap();
    assert!(config.contains("\"decay\": \"linear\""), "{config}");
    // A final fraction outside [0, 1] is refused before anything is written.
    let bad = dir.path().join("bad");
    let err = fails(&[&common[..], &["--final-lr-fraction", "2", "--out", s(&bad)]].concat());
    assert!(err.contains("final_fraction"), "{err}");
    assert!(!bad.exists());
}

#[test]
fn decode_of_exported_codes_equals_reconstruct() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 5);
    let run = dir.path().join("run");
    train_tiny(&data, 6, &run);
    let rec = dir.path().join("rec");
    let out = ok(&[
        "reconstruct",
        "--checkpoint",
        s(&run),
        "--input",
        s(&data),
        "--out",
        s(&rec),
        "--export-codes",
    ]);
    assert!(out.contains("mean over 5 images"), "{out}");
    let dec = dir.path().join("dec");
    ok(&[
        "decode",
        "--checkpoint",
        s(&run),
        "--codes",
        s(&rec.join("codes.json")),
        "--out",
        s(&dec),
    ]);
    for i in 0..5 {
        let name = format!("proc_{i:05}.png");
        let a = std::fs::read(rec.join(&name)).unwrap();
        let b = std::fs::read(dec.join(&name)).unwrap();
        assert_eq!(a, b, "{name} differs between reconstruct and decode");
    }
    assert!(rec.join("proc_00000.side_by_side.png").is_file());
    assert!(rec.join("metrics.csv").is_file() && rec.join("metrics.json").is_file());
    // A codes.json from before the weights digest decodes, with a warning.
    let mut codes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("codes.json")).unwrap()).unwrap();
    assert!(codes["model_digest"].is_string(), "{codes}");
    codes.as_object_mut().unwrap().remove("model_digest");
    codes["comment"] = "from a newer vqvae".into();
    let old = dir.path().join("old-codes.json");
    std::fs::write(&old, codes.to_string()).unwrap();
    let dec_old = dir.path().join("dec-old");
    let text = ok_logged(&[
        "decode",
        "--checkpoint",
        s(&run),
        "--codes",
        s(&old),
        "--out",
        s(&dec_old),
    ]);
    assert!(text.contains("records no digest of the weights"), "{text}");
    assert!(
        text.contains("has key `comment` that no reader knows: ignored"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(dec_old.join("proc_00000.png")).unwrap(),
        std::fs::read(rec.join("proc_00000.png")).unwrap()
    );
}

/// Nothing a user passes makes `reconstruct`, `compare` or `decode` write over the input
/// images or outside `--out`, and sizes no model can evaluate are refused up front (each of
/// these overwrote originals, wrote outside `--out`, or panicked before).
#[test]
fn outputs_stay_apart_from_inputs_and_inside_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 3);
    let run = dir.path().join("run");
    train_tiny(&data, 2, &run);
    let originals: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(data.join(format!("proc_{i:05}.png"))).unwrap())
        .collect();
    let one = data.join("proc_00000.png");
    for (input, out, expected) in [
        (&data, data.clone(), "--out is the input folder"),
        (&data, data.join("rec"), "--out is inside the input folder"),
        (&one, data.clone(), "--out is the input folder"),
    ] {
        for command in ["reconstruct", "compare"] {
            let err = fails(&[
                command,
                "--checkpoint",
                s(&run),
                "--input",
                s(input),
                "--out",
                s(&out),
            ]);
            assert!(err.contains(expected), "{command} {out:?}: {err}");
        }
    }
    // A single file with --out a subfolder of its folder is safe (it used to be refused: the
    // documented default `outputs/reconstruct` failed from the photo's own folder).
    ok(&[
        "reconstruct",
        "--checkpoint",
        s(&run),
        "--input",
        s(&one),
        "--out",
        s(&data.join("one-rec")),
    ]);
    std::fs::remove_dir_all(data.join("one-rec")).unwrap();
    for (i, bytes) in originals.iter().enumerate() {
        let now = std::fs::read(data.join(format!("proc_{i:05}.png"))).unwrap();
        assert_eq!(&now, bytes, "image {i} was overwritten");
    }
    assert!(!data.join("rec").exists());
    for size in ["0", "4", "100000"] {
        for command in ["reconstruct", "compare"] {
            let out = dir.path().join("o");
            let err = fails(&[
                command,
                "--checkpoint",
                s(&run),
                "--input",
                s(&data),
                "--out",
                s(&out),
                "--size",
                size,
            ]);
            assert!(
                err.contains(&format!("--size ({size}) must be between 7")),
                "{command} --size {size}: {err}"
            );
            assert!(!err.contains("invalid configuration"), "{err}");
        }
    }
    // An --out that is a file: said so, not the OS's "File exists" / "Not a directory".
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep").unwrap();
    let expected = format!("--out {} is a file, not a folder", file.display());
    for command in ["reconstruct", "compare"] {
        let err = fails(&[
            command,
            "--checkpoint",
            s(&run),
            "--input",
            s(&data),
            "--out",
            s(&file),
        ]);
        assert!(err.contains(&expected), "{command}: {err}");
    }
    let err = fails(&["train", "--preset", "tiny", "--out", s(&file)]);
    assert!(err.contains(&expected), "train: {err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    // A run inside --data or --val: its sample grids would be scanned as images next time.
    let val_folder = images(&dir.path().join("val"), 2);
    for flag in ["--data", "--val"] {
        let folder = if flag == "--data" { &data } else { &val_folder };
        let inside = folder.join("run");
        let mut args = vec!["train", "--preset", "tiny", "--data", s(&data)];
        args.extend(["--val", s(&val_folder), "--out", s(&inside)]);
        let err = fails(&args);
        assert!(
            err.contains(&format!("is inside the {flag} folder")) && !inside.exists(),
            "{flag}: {err}"
        );
    }

    let rec = dir.path().join("rec");
    ok(&[
        "reconstruct",
        "--checkpoint",
        s(&run),
        "--input",
        s(&data),
        "--out",
        s(&rec),
        "--export-codes",
    ]);
    let codes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("codes.json")).unwrap()).unwrap();
    let escaped = dir.path().join("escaped.png");
    let absolute = dir.path().join("absolute");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(Edit, &str)> = vec![
        (Box::new(|c| c["tile"] = 0.into()), "tile 0"),
        (
            Box::new(|c| {
                c["height"] = 0.into();
                c["width"] = 0.into();
                c["images"][0]["codes"] = serde_json::json!([]);
            }),
            "the code grid is 0×0",
        ),
        // The tiny preset's factor is 4: `reconstruct` writes at most 8192 / 4 codes a side;
        // 4096² codes passed before and aborted on an 8 GiB allocation.
        (
            Box::new(|c| {
                c["height"] = 2049.into();
                c["width"] = 2049.into();
            }),
            "the code grid is 2049×2049: more than 2048 codes a side, the most `reconstruct` \
             writes for this model (8192 pixels at factor 4)",
        ),
        (
            Box::new(|c| c["model_digest"] = "0123456789abcdef".into()),
            "(digest 0123456789abcdef), and --checkpoint",
        ),
        (
            Box::new(|c| c["images"][0]["name"] = "../escaped".into()),
            "\"../escaped\" is not a plain file name",
        ),
        (
            Box::new(move |c| c["images"][0]["name"] = s(&absolute).into()),
            "is not a plain file name",
        ),
        (
            Box::new(|c| c["images"][0]["name"] = "".into()),
            "\"\" is not a plain file name",
        ),
        (
            Box::new(|c| c["images"][0]["name"] = "n".repeat(252).into()),
            "has 252 bytes: NAME.png must fit",
        ),
        (
            Box::new(|c| c["images"][1]["name"] = c["images"][0]["name"].clone()),
            "appears twice",
        ),
        // A case-insensitive file system (macOS, Windows) would write one over the other.
        (
            Box::new(|c| {
                c["images"][0]["name"] = "Photo".into();
                c["images"][1]["name"] = "photo".into();
            }),
            "\"photo\" appears twice (letter case and Unicode normalisation aside)",
        ),
        // macOS compares names in NFC: `é` as one code point and as `e` + U+0301 are one file.
        (
            Box::new(|c| {
                c["images"][0]["name"] = "caf\u{e9}".into();
                c["images"][1]["name"] = "cafe\u{301}".into();
            }),
            "appears twice (letter case and Unicode normalisation aside)",
        ),
        (
            Box::new(|c| c["images"][0]["name"] = "two\nlines".into()),
            "has a control character",
        ),
    ];
    let dec = dir.path().join("dec");
    for (edit, expected) in edits {
        let mut edited = codes.clone();
        edit(&mut edited);
        let path = dir.path().join("edited.json");
        std::fs::write(&path, edited.to_string()).unwrap();
        let err = fails(&[
            "decode",
            "--checkpoint",
            s(&run),
            "--codes",
            s(&path),
            "--out",
            s(&dec),
        ]);
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(!escaped.exists() && !dir.path().join("absolute.png").exists());
    assert!(!dec.exists(), "decode wrote before checking its codes");

    // A training run's folder or one inside it: metrics.csv would replace the training log,
    // decoded images the sample grids.
    let log = std::fs::read(run.join("metrics.csv")).unwrap();
    for out in [run.clone(), run.join("samples")] {
        let err = fails(&[
            "reconstruct",
            "--checkpoint",
            s(&run),
            "--input",
            s(&data),
            "--out",
            s(&out),
        ]);
        assert!(err.contains("the training run"), "{err}");
        let err = fails(&[
            "decode",
            "--checkpoint",
            s(&run),
            "--codes",
            s(&rec.join("codes.json")),
            "--out",
            s(&out),
        ]);
        assert!(err.contains("the training run"), "{err}");
    }
    assert_eq!(std::fs::read(run.join("metrics.csv")).unwrap(), log);
    // An input folder reaching the output folder through a link inside it.
    #[cfg(unix)]
    {
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::copy(data.join("proc_00001.png"), other.join("proc_00000.png")).unwrap();
        let before = std::fs::read(other.join("proc_00000.png")).unwrap();
        std::os::unix::fs::symlink(&other, data.join("linked")).unwrap();
        let err = fails(&[
            "reconstruct",
            "--checkpoint",
            s(&run),
            "--input",
            s(&data),
            "--out",
            s(&other),
        ]);
        assert!(err.contains("is inside --out (through a link)"), "{err}");
        assert_eq!(std::fs::read(other.join("proc_00000.png")).unwrap(), before);
    }
}

/// Trained on 16² crops of a 32-pixel view, the model evaluates 32² images in 16² tiles; the
/// exported codes record the tile and decode back to the same bytes. (Trained without the
/// sampling GroupNorms, as the `small` preset, so that layout goes through save, load and
/// decode too.)
#[test]
fn tiled_reconstruction_of_a_larger_view_decodes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 3);
    let run = dir.path().join("run");
    #[rustfmt::skip]
    ok(&["train", "--preset", "tiny", "--data", s(&data), "--resize", "32", "--max-steps", "4",
         "--sampling-norm", "false", "--out", s(&run)]);
    let rec = dir.path().join("rec");
    #[rustfmt::skip]
    ok(&["reconstruct", "--checkpoint", s(&run), "--input", s(&data), "--out", s(&rec),
         "--export-codes"]);
    let codes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("codes.json")).unwrap()).unwrap();
    assert_eq!(codes["tile"], 16, "{codes}");
    assert_eq!(
        (codes["height"].as_u64(), codes["width"].as_u64()),
        (Some(8), Some(8))
    );
    let image = image::open(rec.join("proc_00000.png")).unwrap();
    assert_eq!((image.width(), image.height()), (32, 32));
    let dec = dir.path().join("dec");
    #[rustfmt::skip]
    ok(&["decode", "--checkpoint", s(&run), "--codes", s(&rec.join("codes.json")), "--out",
         s(&dec)]);
    for i in 0..3 {
        let name = format!("proc_{i:05}.png");
        let a = std::fs::read(rec.join(&name)).unwrap();
        let b = std::fs::read(dec.join(&name)).unwrap();
        assert_eq!(a, b, "{name} differs between reconstruct and decode");
    }

    // `--tile 32` reconstructs the 32² images whole: no tile in the codes, other pixels, and
    // decode still reproduces them.
    let whole = dir.path().join("whole");
    #[rustfmt::skip]
    ok(&["reconstruct", "--checkpoint", s(&run), "--input", s(&data), "--out", s(&whole),
         "--export-codes", "--tile", "32"]);
    let codes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("codes.json")).unwrap()).unwrap();
    assert!(codes["tile"].is_null(), "{codes}");
    let tiled = std::fs::read(rec.join("proc_00000.png")).unwrap();
    assert_ne!(std::fs::read(whole.join("proc_00000.png")).unwrap(), tiled);
    let dec_whole = dir.path().join("dec_whole");
    #[rustfmt::skip]
    ok(&["decode", "--checkpoint", s(&run), "--codes", s(&whole.join("codes.json")), "--out",
         s(&dec_whole)]);
    assert_eq!(
        std::fs::read(whole.join("proc_00000.png")).unwrap(),
        std::fs::read(dec_whole.join("proc_00000.png")).unwrap()
    );

    // A tile that does not divide the view, or is finer than the factor, is refused before
    // anything is written.
    let bad = dir.path().join("bad");
    #[rustfmt::skip]
    let err = fails(&["reconstruct", "--checkpoint", s(&run), "--input", s(&data), "--out",
                      s(&bad), "--tile", "12"]);
    assert!(
        err.contains("--tile 12 must divide the image size 32"),
        "{err}"
    );
    #[rustfmt::skip]
    let err = fails(&["compare", "--checkpoint", s(&run), "--input", s(&data), "--out",
                      s(&bad), "--tile", "2"]);
    assert!(
        err.contains("multiple of the down-sampling factor 4"),
        "{err}"
    );
    assert!(!bad.exists(), "nothing written for a bad --tile");
}

#[test]
fn compare_writes_table_grids_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 4);
    let (a, b) = (dir.path().join("with"), dir.path().join("without"));
    ok(&tiny_args(&data, "4", &a));
    ok(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        s(&data),
        "--max-steps",
        "4",
        "--attention",
        "none",
        "--out",
        s(&b),
    ]);
    let out_dir = dir.path().join("cmp");
    let out = ok(&[
        "compare",
        "--checkpoint",
        s(&a),
        "--checkpoint",
        s(&b),
        "--input",
        s(&data),
        "--out",
        s(&out_dir),
        "--bicubic-floor",
        "--unquantized",
    ]);
    assert!(
        out.contains("with (DAAM)") && out.contains("without (no attention)"),
        "{out}"
    );
    assert!(
        out.contains("| with (DAAM), unquantized | 4 |")
            && out.contains("| without (no attention), unquantized | 4 |"),
        "{out}"
    );
    assert!(out.contains("bicubic ↓4↑ (floor)"), "{out}");
    assert!(out.contains("| with (DAAM) | 4 | whole images |"), "{out}");
    for file in [
        "comparison.md",
        "comparison.csv",
        "comparison.json",
        "report.html",
        "grids/000_proc_00000.png",
    ] {
        assert!(out_dir.join(file).is_file(), "missing {file}");
    }
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("data:image/png;base64,"),
        "the report embeds its grids"
    );
    let err = fails(&[
        "compare",
        "--checkpoint",
        s(&a),
        "--label",
        "x",
        "--label",
        "y",
        "--input",
        s(&data),
    ]);
    assert!(err.contains("2 labels for 1 checkpoints"), "{err}");
    // Rows are told apart by label: empty and repeated labels are refused; the same checkpoint
    // twice is noted and its default label numbered; `|` does not break the markdown table.
    let twice = |labels: &[&str]| {
        let mut args = vec!["compare", "--checkpoint", s(&a), "--checkpoint", s(&a)];
        for label in labels {
            args.extend(["--label", label]);
        }
        let out = dir
            .path()
            .join(format!("cmp{}", labels.len() + labels.concat().len()));
        args.extend(["--input", s(&data), "--out", s(&out)]);
        (args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), out)
    };
    for (labels, expected) in [
        (&["", "b"][..], "--label 1 is empty"),
        (&["same", "same"][..], "--label \"same\" is given twice"),
        (&["same", "same "][..], "--label \"same \" is given twice"),
        (&["two\nlines", "b"][..], "has a control character"),
    ] {
        let (args, _) = twice(labels);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&args);
        assert!(err.contains(expected), "{labels:?}: {err}");
    }
    let (args, _) = twice(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = vqvae(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("| with (DAAM) | 4 |") && stdout.contains("| with (DAAM) [2] | 4 |"),
        "{stdout}"
    );
    assert!(
        stderr.contains("is the checkpoint of \"with (DAAM)\" again"),
        "{stderr}"
    );
    let (args, out) = twice(&["a|b", "q\"uote,d"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = ok(&args);
    assert!(stdout.contains("| a\\|b | 4 |"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
    assert!(
        csv.lines().any(|l| l.starts_with("\"q\"\"uote,d\",mean,")),
        "{csv}"
    );
}

/// Dead-code restarts change the codebook (the loss departs from a run without them at the
/// first restart), are counted in metrics.csv, and restart a code at most once per
/// `dead_code_after` steps; a restart alone does not count as a use in the usage column.
#[test]
fn dead_codes_are_restarted_counted_and_not_reported_as_used() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 4);
    let (after, steps, codes) = (3u64, 12u64, 64u64);
    let mut runs = Vec::new();
    for dead_code_after in [0, after] {
        let config = dir.path().join(format!("dead{dead_code_after}.toml"));
        std::fs::write(
            &config,
            format!("[model]\nnum_codes = {codes}\ndead_code_after = {dead_code_after}\n"),
        )
        .unwrap();
        let run = dir.path().join(format!("run{dead_code_after}"));
        ok(&[
            "train",
            "--preset",
            "tiny",
            "--data",
            s(&data),
            "--val",
            s(&data),
            "--config",
            s(&config),
            "--max-steps",
            &steps.to_string(),
            "--out",
            s(&run),
        ]);
        runs.push(run);
    }
    let restarted = |run: &Path| -> Vec<u64> {
        column(run, "restarted_codes")
            .iter()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    assert!(restarted(&runs[0]).iter().all(|&n| n == 0));
    let counts = restarted(&runs[1]);
    let first = counts
        .iter()
        .position(|&n| n > 0)
        .expect("no code was restarted");
    assert!(
        first < after as usize + 1,
        "first restart at row {first}: {counts:?}"
    );
    // Each code at most once per `after` steps: no window of `after` steps restarts more
    // codes than there are.
    let cumulative: Vec<u64> = std::iter::once(0).chain(counts.iter().copied()).collect();
    for window in cumulative.windows(after as usize + 1) {
        let restarts = window[after as usize] - window[0];
        assert!(
            restarts <= codes,
            "{restarts} restarts in {after} steps: {counts:?}"
        );
    }
    let losses = |run: &Path| column(run, "loss");
    let (plain, restarting) = (losses(&runs[0]), losses(&runs[1]));
    assert_eq!(
        plain[..=first],
        restarting[..=first],
        "identical up to the restart"
    );
    assert_ne!(
        plain[first + 1..],
        restarting[first + 1..],
        "restarts changed nothing"
    );
    // The step that restarts codes reports the usage its latents made, as without restarts
    // (recording restarts as uses reported 100 % there).
    let usage = |run: &Path| column(run, "usage")[first].clone();
    assert_eq!(usage(&runs[0]), usage(&runs[1]));
}

#[test]
fn unreadable_images_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 6);
    std::fs::write(data.join("corrupt.jpg"), b"this is not a jpeg").unwrap();
    let png = std::fs::read(data.join("proc_00000.png")).unwrap();
    std::fs::write(data.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    image::GrayImage::from_fn(30, 20, |x, y| image::Luma([(x * 8 + y) as u8]))
        .save(data.join("gray.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(20, 28, |x, y| {
        image::Rgb([(x * 3000) as u16, (y * 2000) as u16, 40000])
    })
    .save(data.join("deep.png"))
    .unwrap();
    let run = dir.path().join("run");
    // The folder as a relative path: the resume below reads it back absolute from
    // `sources.json`, and must still know the two files (it counted them again under the other
    // spelling).
    let out = Command::new(env!("CARGO_BIN_EXE_vqvae"))
        .current_dir(dir.path())
        .args([
            "train",
            "--preset",
            "tiny",
            "--data",
            "images",
            "--val",
            "images",
            "--max-steps",
            "6",
            "--out",
            "run",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("corrupt.jpg") && stderr.contains("truncated.png"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("gray.png") && !stderr.contains("deep.png"),
        "{stderr}"
    );
    // Six steps of four over eight images: every epoch meets the bad files again; each is
    // named once, with the decoder's reason after the file.
    for bad in ["corrupt.jpg", "truncated.png"] {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("skipped unreadable image") && l.contains(bad))
            .collect();
        assert_eq!(lines.len(), 1, "{bad}: {stderr}");
        let reason = lines[0].rsplit(&format!("{bad}: ")).next().unwrap();
        assert!(reason.len() > 5 && !reason.contains(bad), "{}", lines[0]);
    }
    let rows = trajectory(&run);
    assert_eq!(rows.len(), 6);
    // Two files, however many times they were read (it counted every re-read: 20 after ten
    // epochs of two bad files). A resumed run goes on counting the same two.
    let skipped = |run: &Path| -> u64 {
        column(run, "skipped_images")
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(skipped(&run), 2);
    let out = vqvae(&["train", "--out", s(&run), "--resume", "--max-steps", "12"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("skipped unreadable image"),
        "reported again: {stderr}"
    );
    assert_eq!(skipped(&run), 2);
}

#[test]
fn bad_inputs_give_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        s(&empty),
        "--out",
        s(&dir.path().join("r")),
    ]);
    assert!(err.contains(s(&empty)), "{err}");

    let data = images(dir.path(), 4);
    let run = dir.path().join("run");
    train_tiny(&data, 2, &run);
    let out = dir.path().join("o");
    let reconstruct_fails = || {
        fails(&[
            "reconstruct",
            "--checkpoint",
            s(&run),
            "--input",
            s(&data),
            "--out",
            s(&out),
        ])
    };
    // A checkpoint whose config.json says another network.
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    std::fs::write(
        run.join("config.json"),
        config.replace("\"num_codes\": 32", "\"num_codes\": 64"),
    )
    .unwrap();
    let err = reconstruct_fails();
    assert!(
        err.contains("model.bin") && err.contains("does not fit"),
        "{err}"
    );
    // Edits burn would not catch: a third width (burn's loader panicked on the list length),
    // no attention (burn loaded the DAAM weights' file silently, ignoring them), and values no
    // model can have (the quantizer's constructor panicked).
    let edits = [
        (
            "\"hidden\": [\n      8,\n      16\n    ]",
            "\"hidden\": [8, 16, 32]",
            "the configuration builds encoder.blocks.2.conv.weight [32, 16, 4, 4]",
        ),
        (
            "\"attention\": {\n      \"kind\": \"daam\",\n      \"num_heads\": 2,\n      \
             \"num_gaussians\": 2,\n      \"num_layers\": 1\n    }",
            "\"attention\": {\"kind\": \"none\"}",
            "does not fit this configuration",
        ),
        (
            "\"num_codes\": 32",
            "\"num_codes\": 0",
            "model.num_codes (0) must be between 1",
        ),
    ];
    for (from, to, expected) in edits {
        assert!(config.contains(from), "{config}");
        std::fs::write(run.join("config.json"), config.replace(from, to)).unwrap();
        for command in ["reconstruct", "resume"] {
            let err = if command == "resume" {
                fails(&["train", "--out", s(&run), "--resume", "--max-steps", "3"])
            } else {
                reconstruct_fails()
            };
            assert!(err.contains(expected), "{to}, {command}: {err}");
        }
    }
    // Checkpoints of earlier versions have no model.json: a width added to config.json is still
    // named (burn's loader asserted on the list length), not a panic.
    let params = run.join("step-00000002").join("model.json");
    let saved = std::fs::read(&params).unwrap();
    std::fs::remove_file(&params).unwrap();
    let (from, to, _) = &edits[0];
    std::fs::write(run.join("config.json"), config.replace(from, to)).unwrap();
    let err = reconstruct_fails();
    assert!(err.contains("another number of blocks"), "{err}");
    std::fs::write(&params, saved).unwrap();
    std::fs::write(run.join("config.json"), config).unwrap();
    // The run lock is never written through a link (it would write the pid into the target).
    #[cfg(unix)]
    {
        let target = dir.path().join("precious.txt");
        std::fs::write(&target, "keep").unwrap();
        let lock = run.join(".lock");
        let _ = std::fs::remove_file(&lock);
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = fails(&["train", "--out", s(&run), "--resume", "--max-steps", "3"]);
        assert!(err.contains(".lock is not a plain file"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        std::fs::remove_file(&lock).unwrap();
    }
    // Without sources.json a resumed run would train on the built-in images instead of --data.
    let sources = run.join("sources.json");
    std::fs::rename(&sources, dir.path().join("sources.json")).unwrap();
    let err = fails(&["train", "--out", s(&run), "--resume", "--max-steps", "3"]);
    assert!(
        err.contains("sources.json: is missing") && err.contains("pass --data"),
        "{err}"
    );
    std::fs::rename(dir.path().join("sources.json"), &sources).unwrap();
    // A truncated weights file (an interrupted copy) and a corrupt one (a length prefix at the
    // start claiming 2⁶³ bytes: burn's own recorder would try to allocate it and abort) are
    // named as such, as is the optimizer's on --resume; nothing is written over them.
    let step = run.join("step-00000002");
    for file in ["model.bin", "optimizer.bin"] {
        let bytes = std::fs::read(step.join(file)).unwrap();
        let mut corrupt = vec![253u8, 0, 0, 0, 0, 0, 0, 0, 0x80];
        corrupt.extend_from_slice(&bytes[9..]);
        for (damaged, what) in [
            (bytes[..bytes.len() / 2].to_vec(), "is truncated"),
            (corrupt, "is corrupt"),
        ] {
            std::fs::write(step.join(file), &damaged).unwrap();
            let args: &[&str] = if file == "model.bin" {
                &["reconstruct", "--checkpoint", s(&run), "--input", s(&data)]
            } else {
                &["train", "--out", s(&run), "--resume", "--max-steps", "4"]
            };
            let err = fails(args);
            assert!(err.contains(file) && err.contains(what), "{err}");
            assert_eq!(
                std::fs::read(step.join(file)).unwrap(),
                damaged,
                "{file} left as it was"
            );
        }
        std::fs::write(step.join(file), bytes).unwrap();
    }

    let err = fails(&[
        "reconstruct",
        "--checkpoint",
        s(dir.path()),
        "--input",
        s(&data),
    ]);
    assert!(err.contains("not a run folder"), "{err}");
    let missing = dir.path().join("no-such-run");
    let err = fails(&[
        "reconstruct",
        "--checkpoint",
        s(&missing),
        "--input",
        s(&data),
    ]);
    assert!(err.contains("no-such-run: does not exist"), "{err}");
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--config",
        s(&missing),
        "--out",
        s(&missing),
    ]);
    // The operating system's reason once, after the file it is about.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let bad_codes = dir.path().join("codes.json");
    std::fs::write(&bad_codes, r#"{"checkpoint":"x","height":3,"width":3,"num_codes":32,"images":[{"name":"a","codes":[1,2]}]}"#).unwrap();
    let err = fails(&["decode", "--checkpoint", s(&run), "--codes", s(&bad_codes)]);
    assert!(err.contains("image a: 2 codes for a 3×3 grid"), "{err}");
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--device",
        "cuda",
        "--out",
        s(&dir.path().join("c")),
    ]);
    assert!(err.contains("CUDA"), "{err}");
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--image-size",
        "18",
        "--out",
        s(&dir.path().join("d")),
    ]);
    assert!(
        err.contains("image_size (18) must be a positive multiple"),
        "{err}"
    );
}

#[test]
fn a_nan_loss_stops_without_touching_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 4);
    let run = dir.path().join("run");
    train_tiny(&data, 2, &run);
    let before = std::fs::read(run.join("step-00000002/model.bin")).unwrap();
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        s(&data),
        "--max-steps",
        "400",
        "--lr",
        "1e30",
        "--resume",
        "--out",
        s(&run),
    ]);
    assert!(
        err.contains("the loss became") && err.contains("step-00000002"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(run.join("step-00000002/model.bin")).unwrap(),
        before
    );
}

/// SIGTERM while the validation images load stops at once with status 130 and says nothing
/// was saved; it used to promise a checkpoint "after this step" and go on loading (a large
/// `--val` folder, or a huge holdout) until a second signal.
#[test]
fn an_interruption_while_loading_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 4);
    // About a second of decoding and resizing on a fast machine, more on a slow one.
    let val = dir.path().join("val");
    datasets::write_procedural_folder(&val, 3, 48, 1024).expect("writes PNGs");
    let run = dir.path().join("run");
    let child = spawn(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        s(&data),
        "--val",
        s(&val),
        "--resize",
        "256",
        "--max-steps",
        "1000000",
        "--out",
        s(&run),
    ]);
    // The run folder's lock is taken just before the validation images load.
    wait_until(
        "the run's start",
        std::time::Duration::from_millis(5),
        || run.join(".lock").exists(),
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(
            "interrupted while loading the validation images: nothing was trained or saved"
        ),
        "{stderr}"
    );
    assert!(!run.join("latest").exists() && trajectory_len(&run) == 0);
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 4);
    for signal in ["-INT", "-TERM"] {
        let run = dir.path().join(format!("run{signal}"));
        let child = spawn(&tiny_args(&data, "1000000", &run));
        wait_until("training", std::time::Duration::from_millis(50), || {
            trajectory_len(&run) >= 5
        });
        // One training process per folder: a second one, fresh or resuming, is refused (a
        // second fresh run used to start over in the folder and delete the first's checkpoints).
        let holder = format!(
            "in use by another process (pid {}), training into it",
            child.id()
        );
        for extra in [&[][..], &["--resume"][..]] {
            let mut args = vec!["train", "--preset", "tiny", "--out", s(&run)];
            args.extend_from_slice(extra);
            let err = fails(&args);
            assert!(err.contains(&holder), "{args:?}: {err}");
        }
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Saved, and exit status 130 so that `vqvae train … && next` stops.
        assert_eq!(
            out.status.code(),
            Some(130),
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("stopped after"), "{stdout}");
        let steps = trajectory_len(&run) as u64;
        let latest = std::fs::read_to_string(run.join("latest")).unwrap();
        assert_eq!(
            latest,
            format!("step-{steps:08}"),
            "the checkpoint is the last step logged"
        );
        assert!(run.join(latest).join("model.bin").is_file());
        // The folder is free again once the process has ended.
        ok(&[
            "train",
            "--out",
            s(&run),
            "--resume",
            "--max-steps",
            &(steps + 1).to_string(),
        ]);
    }
}

fn trajectory_len(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv"))
        .map_or(0, |t| t.lines().count().saturating_sub(1))
}

/// The loss terms (loss, reconstruction, codebook, commitment) of each step of a run.
fn losses(run: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).expect("metrics.csv");
    text.lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .skip(2)
                .take(4)
                .map(|v| v.parse().expect("a number"))
                .collect()
        })
        .collect()
}

/// The path a CUDA build takes (composed ops; GroupNorm, the mixture and the matrix-product
/// convolution as nodes with written-out gradients), run on the CPU with
/// `DAAM_KERNELS=composed`, trains as the CPU kernels do: the same losses step after step, with
/// each convolution route (`implicit` on the CPU: the backend's default, matrix products,
/// composed by `daam::conv_implicit`, the up-sampling's phases included), the codebook lookup
/// differentiated by a one-hot product (`DAAM_LOOKUP=product`, the cubecl backends' default).
#[test]
fn the_cuda_path_on_the_cpu_trains_like_the_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 6);
    let (_, kernels) = train_six_steps(dir.path(), &data, "kernels", "cpu", &[]);
    assert_eq!(kernels.len(), 6);
    for conv in ["gemm", "backend", "implicit"] {
        // The codebook lookup's gradient by the one-hot product, as on the cubecl backends.
        let env = [
            ("DAAM_KERNELS", "composed"),
            ("DAAM_CONV", conv),
            ("DAAM_LOOKUP", "product"),
        ];
        let (_, composed) = train_six_steps(dir.path(), &data, conv, "cpu", &env);
        assert_same_losses(&composed, &kernels, &format!("composed, {conv}"));
    }
}

/// `vqvae train --preset tiny --data DATA --max-steps 6 --device DEVICE --out DIR/NAME` with
/// `env`: the run folder and each step's loss terms.
fn train_six_steps(
    dir: &Path,
    data: &Path,
    name: &str,
    device: &str,
    env: &[(&str, &str)],
) -> (PathBuf, Vec<Vec<f64>>) {
    let out = dir.join(name);
    let args = [
        "train",
        "--preset",
        "tiny",
        "--data",
        s(data),
        "--max-steps",
        "6",
        "--device",
        device,
        "--out",
        s(&out),
    ];
    let output = vqvae_with(&args, env);
    assert!(
        output.status.success(),
        "vqvae {args:?} with {env:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let losses = losses(&out);
    (out, losses)
}

/// Each step's loss terms of `got` against `want`'s: within 1e-4 (relative, or absolute
/// below one) for the first two steps, within 1e-2 after. Step 1 is the forward pass; Adam's first
/// update moves each parameter by the learning rate times its gradient's sign, so step 2 checks
/// the backward pass's signs and later steps its magnitudes. Adam divides by each gradient's
/// running RMS, so a parameter whose gradient is near zero moves by its rounding: sums taken in
/// another order (the fused CPU kernels, two-pass sums on cubecl) moved step 3 of `tiny` on
/// wgpu with `DAAM_CONV=backend` by 0.4 %. Each op's gradients are compared closely in `daam`'s
/// unit tests.
fn assert_same_losses(got: &[Vec<f64>], want: &[Vec<f64>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: steps");
    for (step, (a, b)) in got.iter().zip(want).enumerate() {
        let tolerance = if step < 2 { 1e-4 } else { 1e-2 };
        for (u, v) in a.iter().zip(b) {
            assert!(
                (u - v).abs() <= tolerance * (1.0 + v.abs()),
                "{what}, step {}: losses {a:?} against {b:?}\nall steps: {got:?}\nagainst {want:?}",
                step + 1
            );
        }
    }
}

/// burn's wgpu backend runs the cubecl kernels and fusion a CUDA build runs (compiled to WGSL
/// instead of CUDA C++), so a build with `--features wgpu` on any Vulkan adapter — Mesa's
/// lavapipe on a machine without a GPU — rehearses the CUDA path: the same losses as the CPU
/// kernels step after step from the same seed (the model is drawn on the CPU), with each
/// convolution route (`implicit`: cubek's tensor-core kernels where the adapter has them,
/// matrix products in the same fusion ops where not, as on lavapipe), and the same codes and
/// images from `reconstruct`. Needs a wgpu adapter:
/// `cargo test --release -p vqvae --features wgpu --test cli wgpu`.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_trains_and_reconstructs_like_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let data = images(dir.path(), 6);
    let (cpu, kernels) = train_six_steps(dir.path(), &data, "cpu", "cpu", &[]);
    assert_eq!(kernels.len(), 6);
    for conv in ["gemm", "backend", "implicit"] {
        let (_, gpu) = train_six_steps(dir.path(), &data, conv, "wgpu", &[("DAAM_CONV", conv)]);
        assert_same_losses(&gpu, &kernels, &format!("wgpu, {conv}"));
    }
    // The CPU's checkpoint reconstructed on wgpu: the same codes, images within one level.
    let reconstruct = |device: &str| {
        let out = dir.path().join(format!("rec-{device}"));
        ok(&[
            "reconstruct",
            "--checkpoint",
            s(&cpu),
            "--input",
            s(&data),
            "--out",
            s(&out),
            "--export-codes",
            "--device",
            device,
        ]);
        out
    };
    let (on_cpu, on_gpu) = (reconstruct("cpu"), reconstruct("wgpu"));
    let codes = |dir: &Path| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join("codes.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["images"].clone()
    };
    assert_eq!(codes(&on_gpu), codes(&on_cpu), "codes differ");
    for i in 0..6 {
        let name = format!("proc_{i:05}.png");
        let a = image::open(on_cpu.join(&name)).unwrap().to_rgb8();
        let b = image::open(on_gpu.join(&name)).unwrap().to_rgb8();
        let worst = a.iter().zip(b.iter()).map(|(x, y)| x.abs_diff(*y)).max();
        assert!(worst <= Some(1), "{name}: pixels differ by {worst:?}");
    }
}

/// A device that cannot allocate a tensor ends the run with a one-line error, not a hang:
/// cubecl catches the panic of a failed allocation on its device thread, and the program
/// waited for the result for ever. `paper` at batch 256 unfolds a 77 GB input for its first
/// matrix-product convolution.
#[cfg(feature = "wgpu")]
#[test]
fn a_failed_wgpu_allocation_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vqvae"))
        .args([
            "train",
            "--preset",
            "paper",
            "--batch-size",
            "256",
            "--max-steps",
            "1",
            "--device",
            "wgpu",
            "--out",
            s(&run),
        ])
        .env("DAAM_CONV", "gemm")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the vqvae binary starts");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() >= 60 {
            child.kill().unwrap();
            panic!("vqvae train still ran 60 s after starting a step it cannot allocate");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the wgpu device failed")
            && stderr.contains("try a smaller --batch-size"),
        "{stderr}"
    );
    // No checkpoint was started.
    assert!(!run.join("step-00000001").exists());
}

/// A build without the `wgpu` feature says how to get it.
#[cfg(not(feature = "wgpu"))]
#[test]
fn wgpu_without_the_feature_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&[
        "train",
        "--preset",
        "tiny",
        "--max-steps",
        "1",
        "--device",
        "wgpu",
        "--out",
        s(&dir.path().join("run")),
    ]);
    assert!(
        err.contains("built without wgpu support") && err.contains("--features wgpu"),
        "{err}"
    );
}
