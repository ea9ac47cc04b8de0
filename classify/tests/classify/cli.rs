//! The `classify` binary end to end on stores it generates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Refusals;

fn classify(args: &[&str]) -> Output {
    classify_with(args, &[])
}

/// [`classify`] with extra environment variables.
fn classify_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run classify")
}

/// `classify synth` of `count` items in `groups` groups, 8 layers × 16 features, the class
/// signal in layers 2 and 5.
fn synth(store: &Path, count: usize, groups: usize) {
    synth_with(store, count, groups, &[]);
}

/// [`synth`] with `extra` arguments (`--seed`, `--classes`, `--split`).
fn synth_with(store: &Path, count: usize, groups: usize, extra: &[&str]) {
    let (count, groups) = (count.to_string(), groups.to_string());
    let mut args = vec![
        "synth",
        "--out",
        path(store),
        "--count",
        &count,
        "--layers",
        "8",
        "--d-model",
        "16",
        "--groups",
        &groups,
        "--signal-layers",
        "2,5",
    ];
    args.extend_from_slice(extra);
    let out = classify(&args);
    assert!(out.status.success(), "{}", text(&out));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A reader that stops early (`classify heads … | head -1`) ends the command quietly; Rust's
/// default (SIGPIPE ignored) made `println!` panic: "failed printing to stdout: Broken pipe".
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_classify"))
        .args([
            "heads",
            "--layers",
            "24",
            "--d-model",
            "1024",
            "--classes",
            "4",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn heads_prints_counts_equal_to_the_authors() {
    let out = classify(&[
        "heads",
        "--layers",
        "24",
        "--d-model",
        "1024",
        "--classes",
        "4",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let s = text(&out);
    assert!(
        s.contains("| daam-v1 | 16384 | 221720 | 98308 | 336412 |"),
        "{s}"
    );
    assert!(!s.contains("DIFFERS"), "{s}");
}

#[test]
fn replicate_and_report_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 60, 3);
    let out = classify(&["validate", path(&store)]);
    assert!(out.status.success(), "{}", text(&out));

    let rep = dir.path().join("rep");
    let replicate = |epochs: &str| {
        classify(&[
            "replicate",
            "--task",
            "iemocap",
            "--embeddings",
            path(&store),
            "--methods",
            "daam-v1,mha",
            "--epochs",
            epochs,
            "--out",
            path(&rep),
        ])
    };
    let out = replicate("2");
    assert!(out.status.success(), "{}", text(&out));
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    for method in ["daam-v1", "mha"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {method} |")))
            .unwrap_or_else(|| panic!("no {method} row in\n{md}"));
        // method, F1..F3, mean: 5 cells.
        assert_eq!(row.matches('|').count(), 6, "{row}");
    }
    let csv = std::fs::read_to_string(rep.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    // Rerunning into the same folder with other settings is refused, naming what differs.
    let out = replicate("3");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("other settings (settings.epochs: 2 → 3)"),
        "{}",
        text(&out)
    );

    let out = classify(&[
        "report",
        "--replication",
        path(&rep),
        "--method",
        "daam-v1",
        "--ablate",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let interp = rep.join("runs/daam-v1/fold-1/interpretation");
    for f in [
        "importance.png",
        "layer_contribution.png",
        "interpretation.json",
    ] {
        assert!(interp.join(f).exists(), "{f} missing");
    }
    // A damaged head file is named and described, never a panic or an abort: truncated, and a
    // length prefix at the start claiming 2⁶³ bytes (burn's own recorder would try to allocate
    // it and abort the process).
    let model = rep.join("runs/daam-v1/fold-1/model.bin");
    let bytes = std::fs::read(&model).unwrap();
    let mut corrupt = vec![253u8, 0, 0, 0, 0, 0, 0, 0, 0x80];
    corrupt.extend_from_slice(&bytes[9..]);
    for (damaged, what) in [
        (bytes[..bytes.len() / 2].to_vec(), "is truncated"),
        (corrupt, "is corrupt"),
    ] {
        std::fs::write(&model, damaged).unwrap();
        let out = classify(&["report", "--replication", path(&rep), "--method", "daam-v1"]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains("model.bin") && text(&out).contains(what),
            "{}",
            text(&out)
        );
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
    std::fs::write(&model, bytes).unwrap();
    // MHA has no density weights: a clear error, not a panic.
    let out = classify(&["report", "--replication", path(&rep), "--method", "mha"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no density weights"), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    let ablation = std::fs::read_to_string(rep.join("ablation/fold-1/ablation-2.md")).unwrap();
    assert!(
        ablation.contains("| high-if |") && ablation.contains("| low-if |"),
        "{ablation}"
    );

    // Mixed precision: the same protocol, recorded in replicate.json.
    let half = dir.path().join("half");
    let out = classify(&[
        "replicate",
        "--task",
        "iemocap",
        "--embeddings",
        path(&store),
        "--methods",
        "daam-v2",
        "--epochs",
        "1",
        "--precision",
        "bf16",
        "--out",
        path(&half),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("meant for --device cuda"),
        "{}",
        text(&out)
    );
    let record = std::fs::read_to_string(half.join("replicate.json")).unwrap();
    assert!(record.contains("\"precision\": \"bf16\""), "{record}");
    let csv = std::fs::read_to_string(half.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = classify(&[
        "synth",
        "--out",
        path(&store),
        "--count",
        "20",
        "--layers",
        "8",
        "--d-model",
        "8",
        "--signal-layers",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let out = classify(&[
        "replicate",
        "--task",
        "iemocap",
        "--embeddings",
        path(&store),
        "--methods",
        "lora",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown method `lora`"),
        "{}",
        text(&out)
    );

    // Mixed precision is for the heads: with a LoRA baseline, a clear error first.
    let out = classify(&[
        "replicate",
        "--task",
        "iemocap",
        "--embeddings",
        path(&store),
        "--methods",
        "daam-v1,lora-r4",
        "--precision",
        "f16",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--precision f16 applies to the DAT heads"),
        "{}",
        text(&out)
    );

    let out = classify(&[
        "replicate",
        "--task",
        "cifar100",
        "--embeddings",
        path(&store),
        "--epochs",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("train/"), "{}", text(&out));

    // A store with a missing shard: validate and replicate both name the file.
    let shard = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .expect("a shard");
    std::fs::remove_file(&shard).unwrap();
    let name = shard.file_name().unwrap().to_str().unwrap();
    let out = classify(&["validate", path(&store)]);
    assert!(!out.status.success());
    assert!(text(&out).contains(name), "{}", text(&out));
    let out = classify(&[
        "replicate",
        "--task",
        "iemocap",
        "--embeddings",
        path(&store),
        "--epochs",
        "1",
        "--out",
        path(&dir.path().join("o")),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains(name), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

/// Every head, trained by the path a CUDA build takes (composed ops, the matrix-product
/// convolution as a node with written-out gradients) run on the CPU with
/// `DAAM_KERNELS=composed`, has the CPU kernels' training losses epoch after epoch; and so in
/// bf16 mixed precision (`--precision bf16`, which no CPU kernel takes), where the
/// matrix-product convolution once lost the dtype in burn's `pad` and panicked.
#[test]
fn the_cuda_path_on_the_cpu_trains_every_head_like_the_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 2);
    let run = |name: &str, precision: &str, env: &[(&str, &str)]| {
        replicate_every_head(
            &store,
            &dir.path().join(name),
            &["--precision", precision],
            env,
        )
    };
    let gemm = [("DAAM_KERNELS", "composed"), ("DAAM_CONV", "gemm")];
    let kernels = run("kernels", "f32", &[]);
    assert_same_training(&run("composed", "f32", &gemm), &kernels, 1e-3);
    // The implicit route's nodes (on the CPU its stride-1 convolutions are matrix products).
    let implicit = [("DAAM_KERNELS", "composed"), ("DAAM_CONV", "implicit")];
    assert_same_training(&run("implicit", "f32", &implicit), &kernels, 1e-3);
    // bf16 rounds differently on the two convolutions (by hand, one epoch on a 60-item store:
    // within 1.1e-3).
    assert_same_training(
        &run("bf16-composed", "bf16", &gemm),
        &run("bf16-backend", "bf16", &[("DAAM_CONV", "backend")]),
        5e-3,
    );
}

/// The heads [`replicate_every_head`] trains.
const EVERY_HEAD: [&str; 7] = [
    "daam-v1", "daam-v2", "mixture", "gq-daam", "mha", "mha-bn", "gqa",
];

/// `classify replicate --task iemocap --embeddings STORE --methods <every head> --epochs 3
/// EXTRA --out OUT` with `env`, which must succeed; returns `out`.
fn replicate_every_head(store: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let output = replicate_iemocap(store, &EVERY_HEAD.join(","), "3", out, extra, env);
    assert!(
        output.status.success(),
        "every head on {store:?} with {extra:?} {env:?}: {}",
        text(&output)
    );
    out.to_path_buf()
}

/// `classify replicate --task iemocap --embeddings STORE --methods METHODS --epochs EPOCHS
/// --out OUT EXTRA` with `env`.
fn replicate_iemocap(
    store: &Path,
    methods: &str,
    epochs: &str,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut args = vec![
        "replicate",
        "--task",
        "iemocap",
        "--embeddings",
        path(store),
        "--methods",
        methods,
        "--epochs",
        epochs,
        "--out",
        path(out),
    ];
    args.extend_from_slice(extra);
    classify_with(&args, env)
}

/// Every head's training loss in `got`, epoch by epoch and fold by fold (two folds), within
/// `tolerance` (relative, or absolute below 1) of `want`'s.
fn assert_same_training(got: &Path, want: &Path, tolerance: f64) {
    let train_losses = |rep: &Path, method: &str, fold: usize| -> Vec<f64> {
        let csv = rep.join(format!("runs/{method}/fold-{fold}/metrics.csv"));
        std::fs::read_to_string(&csv)
            .unwrap_or_else(|e| panic!("{}: {e}", csv.display()))
            .lines()
            .skip(1)
            .map(|line| line.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    for method in EVERY_HEAD {
        for fold in 1..=2 {
            let (a, b) = (
                train_losses(got, method, fold),
                train_losses(want, method, fold),
            );
            assert_eq!(a.len(), 3, "{method} fold {fold}: epochs");
            for (u, v) in a.iter().zip(&b) {
                assert!(
                    (u - v).abs() <= tolerance * (1.0 + v.abs()),
                    "{} {method} fold {fold}: train losses {a:?} against {b:?} of {}",
                    got.display(),
                    want.display()
                );
            }
        }
    }
}

/// Every head trained on burn's wgpu backend (the cubecl kernels and fusion a CUDA build runs,
/// compiled to WGSL; Mesa's lavapipe runs them on a machine without a GPU) has the CPU kernels'
/// training losses epoch after epoch from the same seed (heads are drawn on the CPU), with
/// each convolution route. Needs a wgpu adapter: `cargo test --release -p classify --features wgpu
/// --test classify wgpu`.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_trains_every_head_like_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 2);
    let cpu = replicate_every_head(&store, &dir.path().join("cpu"), &[], &[]);
    for conv in ["gemm", "backend", "implicit"] {
        let gpu = replicate_every_head(
            &store,
            &dir.path().join(conv),
            &["--device", "wgpu"],
            &[("DAAM_CONV", conv)],
        );
        assert_same_training(&gpu, &cpu, 1e-3);
    }
    // Mixed precision is refused on wgpu (WGSL has no bf16) before anything is written.
    let refused = dir.path().join("bf16");
    let out = classify(&[
        "replicate",
        "--task",
        "iemocap",
        "--embeddings",
        path(&store),
        "--methods",
        "mha",
        "--precision",
        "bf16",
        "--device",
        "wgpu",
        "--out",
        path(&refused),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("computes in f32 only"),
        "{}",
        text(&out)
    );
    assert!(!refused.exists());
}

/// What an interrupted `classify synth` leaves (its staging folder, no manifest) is named as
/// that by `validate` and `replicate`, not only as a missing manifest.json.
#[test]
fn an_interrupted_synth_is_named_by_validate_and_replicate() {
    let dir = tempfile::tempdir().unwrap();
    for (store, staging) in [
        ("single", ".synth-partial"),
        ("split", "test/.synth-partial"),
    ] {
        let store = dir.path().join(store);
        std::fs::create_dir_all(store.join(staging)).unwrap();
        for args in [
            vec!["validate", path(&store)],
            vec![
                "replicate",
                "--task",
                "iemocap",
                "--embeddings",
                path(&store),
                "--out",
                path(&dir.path().join("rep")),
            ],
        ] {
            let out = classify(&args);
            assert!(!out.status.success(), "{args:?}");
            assert!(
                text(&out).contains("`classify synth` was interrupted while writing")
                    && text(&out).contains(staging),
                "{args:?}: {}",
                text(&out)
            );
        }
    }
    assert!(!dir.path().join("rep").exists());
}

/// Overwrites the first bytes of item `item` of tensor `tensor` in the safetensors file `shard`
/// with `bytes` (the header says where the tensor's data lie).
fn patch_item(shard: &Path, tensor: &str, item: usize, bytes: &[u8]) {
    let mut file = std::fs::read(shard).unwrap();
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + header_len]).unwrap();
    let entry = &header[tensor];
    let [start, end] = [0, 1].map(|k| entry["data_offsets"][k].as_u64().unwrap() as usize);
    let count = entry["shape"][0].as_u64().unwrap() as usize;
    let at = 8 + header_len + start + item * (end - start) / count;
    file[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(shard, file).unwrap();
}

/// `classify replicate --task iemocap` of `methods` for one epoch on `store` into `out`, with
/// `extra` arguments.
fn replicate_one_epoch(store: &Path, methods: &str, out: &Path, extra: &[&str]) -> Output {
    replicate_iemocap(store, methods, "1", out, extra, &[])
}

/// One process per replication folder: while another holds `--out` (here this test, through
/// the same lock), `replicate` is refused naming its pid and writes nothing; once released,
/// the same command runs. (Two replications into one folder failed each other with spurious
/// errors.)
#[test]
fn a_replication_folder_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 4);
    let out = dir.path().join("rep");
    let held = daam::folder_lock::lock_folder(&out).unwrap();
    let refused = replicate_one_epoch(&store, "mha", &out, &[]);
    let message = text(&refused);
    assert!(!refused.status.success(), "{message}");
    assert!(
        message.contains(&format!(
            "is in use by another process (pid {}), writing the replication",
            std::process::id()
        )),
        "{message}"
    );
    assert!(!out.join("replicate.json").exists(), "{message}");
    drop(held);
    let done = replicate_one_epoch(&store, "mha", &out, &[]);
    assert!(done.status.success(), "{}", text(&done));
}

/// What `classify validate` finds (labels out of range, non-finite features, duplicate ids, a
/// shard path out of the store) stops `replicate`, and the Importance Factor ablation of
/// `report`, with the validator's message before anything is trained or written.
#[test]
fn stores_the_validator_rejects_are_refused_before_anything_trains() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    synth(&good, 40, 4);
    let rep = dir.path().join("rep");
    let out = replicate_one_epoch(&good, "daam-v2", &rep, &[]);
    assert!(out.status.success(), "{}", text(&out));

    type Damage = fn(&Path);
    let damages: [(&str, Damage, &str); 5] = [
        (
            "label",
            |store| {
                let shard = store.join("shard-00000.safetensors");
                patch_item(&shard, "labels", 3, &9u32.to_le_bytes());
            },
            "item 3 (`all-000003`): label 9 is not below the 4 classes",
        ),
        (
            "huge-label",
            |store| {
                let shard = store.join("shard-00000.safetensors");
                patch_item(&shard, "labels", 3, &(1u32 << 31).to_le_bytes());
            },
            "item 3 (`all-000003`): label 2147483648 is not below the 4 classes",
        ),
        (
            "nan",
            |store| {
                let shard = store.join("shard-00000.safetensors");
                patch_item(&shard, "features", 5, &f32::NAN.to_le_bytes());
            },
            "item 5 (`all-000005`): non-finite feature NaN at layer 0, position 0",
        ),
        (
            "duplicate-id",
            |store| {
                let shard = store.join("shard-00000.safetensors");
                let bytes = std::fs::read(&shard).unwrap();
                let text = String::from_utf8_lossy(&bytes[..200]).into_owned();
                let at = text.find("all-000001").expect("the ids in the header");
                let mut bytes = bytes;
                bytes[at..at + 10].copy_from_slice(b"all-000000");
                std::fs::write(&shard, bytes).unwrap();
            },
            "item 1 (`all-000000`): id already used by item 0",
        ),
        (
            "outside",
            |store| {
                let manifest = store.join("manifest.json");
                let text = std::fs::read_to_string(&manifest).unwrap();
                let text = text.replace(
                    "\"shard-00000.safetensors\"",
                    "\"../good/shard-00000.safetensors\"",
                );
                std::fs::write(&manifest, text).unwrap();
            },
            "shard file `../good/shard-00000.safetensors` is not a file name inside the store",
        ),
    ];
    for (name, damage, expected) in damages {
        let store = dir.path().join(name);
        synth(&store, 40, 4);
        damage(&store);
        let out = classify(&["validate", path(&store)]);
        refusals.check(&out, expected, &dir.path().join("nothing"));
        let runs = dir.path().join(format!("runs-{name}"));
        let out = replicate_one_epoch(&store, "daam-v2", &runs, &[]);
        refusals.check(&out, expected, &runs);
    }
    // The ablation of `report` retrains on the replication's store: damaged after the
    // replication, it is refused before any ablation run.
    patch_item(
        &good.join("shard-00000.safetensors"),
        "labels",
        3,
        &9u32.to_le_bytes(),
    );
    let out = classify(&[
        "report",
        "--replication",
        path(&rep),
        "--method",
        "daam-v2",
        "--ablate",
        "2",
    ]);
    refusals.check(
        &out,
        "item 3 (`all-000003`): label 9 is not below the 4 classes",
        &rep.join("ablation"),
    );
    refusals.assert_all();
}

/// `report` checks `--ablate` and the run's `head.json` before it computes anything: K = 0, K
/// over half the layers and a head that does not fit K layers are refused, and an edited
/// `head.json` is named with its field.
#[test]
fn report_checks_ablate_and_head_json_before_computing() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 4);
    let rep = dir.path().join("rep");
    let out = replicate_one_epoch(&store, "daam-v2", &rep, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let run = rep.join("runs/daam-v2/fold-1");
    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--replication", path(&rep), "--method", "daam-v2"];
        args.extend_from_slice(extra);
        classify(&args)
    };
    let interpretation = run.join("interpretation");
    for (extra, expected) in [
        (&["--ablate", "0"][..], "--ablate 0"),
        (
            &["--ablate", "5"][..],
            "the 5 highest- and 5 lowest-contribution layers of 8 would overlap; give \
             --ablate 4 or less",
        ),
        (
            &["--ablate", "2", "--ablate-method", "daam-v1"][..],
            "--ablate 2 with --ablate-method daam-v1: daam-v1 splits the layers into 8 heads",
        ),
        (
            &["--ablate", "2", "--ablate-method", "lora-r4"][..],
            "--ablate-method `lora-r4`",
        ),
    ] {
        refusals.check(&report(extra), expected, &interpretation);
    }
    // A method the replication did not run is named as such, not as a missing head.json.
    let other = classify(&["report", "--replication", path(&rep), "--method", "gq-daam"]);
    refusals.check(
        &other,
        "--method gq-daam: not a method of the replication in",
        &interpretation,
    );

    let head_path = run.join("head.json");
    let head = std::fs::read_to_string(&head_path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&head).unwrap();
    for (field, edited, expected) in [
        (
            "num_layers",
            serde_json::json!(16),
            "num_layers is 16, but the replication's store has 8 layers",
        ),
        (
            "num_classes",
            serde_json::json!(0),
            "num_classes must be positive, got 0",
        ),
        (
            "num_classes",
            serde_json::json!(5),
            "num_classes is 5, but the replication's store has 4 classes",
        ),
        (
            "d_model",
            serde_json::json!(0),
            "d_model must be positive, got 0",
        ),
        (
            "kind",
            serde_json::json!("daam-v1"),
            "kind is `daam-v1`, but the run is filed under method `daam-v2`",
        ),
    ] {
        let mut changed = value.clone();
        changed[field] = edited;
        std::fs::write(&head_path, changed.to_string()).unwrap();
        let out = report(&[]);
        let message = format!("{}: {expected}", head_path.display());
        refusals.check(&out, &message, &interpretation);
    }
    std::fs::write(&head_path, head).unwrap();
    let out = report(&[]);
    assert!(out.status.success(), "{}", text(&out));
    refusals.assert_all();
}

/// Zero sizes, non-finite learning rates, no runs, a method or layer named twice: refused
/// with the option named, before anything is written.
#[test]
fn bad_sizes_and_settings_are_refused_before_anything_is_written() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--count", "--layers", "--d-model", "--classes", "--groups"] {
        let out_dir = dir.path().join(format!("synth{flag}"));
        let out = classify(&["synth", "--out", path(&out_dir), flag, "0"]);
        refusals.check(&out, &format!("invalid value '0' for '{flag}"), &out_dir);
    }
    // 10^10 values an item aborted on allocation after writing an empty store that validated.
    let out_dir = dir.path().join("synth-huge");
    let out = classify(&[
        "synth",
        "--out",
        path(&out_dir),
        "--count",
        "10",
        "--layers",
        "100000",
        "--d-model",
        "100000",
        "--signal-layers",
        "1",
    ]);
    refusals.check(
        &out,
        "--layers × --d-model: 100000 × 100000 = 10000000000 values per item (40.0 GB as f32), \
         more than the 4194304 values (16 MiB) synth writes per item",
        &out_dir,
    );
    for flag in ["--layers", "--d-model", "--classes"] {
        let out = classify(&["heads", flag, "0"]);
        refusals.check(
            &out,
            "must be at least 1",
            dir.path().join("none").as_path(),
        );
    }
    // Parameter counts that overflow usize were printed wrapped, with exit status 0.
    for (args, expected) in [
        (
            &["--classes", "18446744073709551615"][..],
            "--layers 24 × --d-model 1024, --classes 18446744073709551615: the daam-v1 head \
             would have more than 18446744073709551615 parameters (the count overflows): \
             choose smaller sizes",
        ),
        (
            &["--layers", "4294967296", "--d-model", "4294967296"][..],
            "(the count overflows)",
        ),
    ] {
        let out = classify(&[&["heads"][..], args].concat());
        refusals.check(&out, expected, dir.path().join("none").as_path());
        refusals.expect(!text(&out).contains("| head |"), || {
            format!("heads printed a table before refusing:\n{}", text(&out))
        });
    }
    // A head that does not fit is listed without counts, with the reason.
    let out = classify(&["heads", "--layers", "5", "--d-model", "16"]);
    let listed = text(&out);
    refusals.expect(
        out.status.success()
            && listed.contains("| daam-v1 | – |")
            && listed.contains("daam-v1 splits the layers into 8 heads: 5 layers"),
        || format!("heads lists daam-v1 on 5 layers without the reason:\n{listed}"),
    );

    let store = dir.path().join("store");
    synth(&store, 40, 4);
    for (case, (extra, expected)) in [
        (
            &["--lr", "NaN"][..],
            "learning_rate must be a positive finite number, got NaN",
        ),
        (
            &["--lr", "inf"][..],
            "learning_rate must be a positive finite number, got inf",
        ),
        (
            &["--runs", "0"][..],
            "invalid value '0' for '--runs <RUNS>'",
        ),
        (
            &["--batch-size", "0"][..],
            "invalid value '0' for '--batch-size <BATCH_SIZE>'",
        ),
        (&["--layers", "1,1"][..], "--layers: layer 1 is named twice"),
        // IEMOCAP's runs are its folds: --runs was ignored without a word.
        (
            &["--runs", "6"][..],
            "--runs: 6 given, but iemocap runs leave-one-group-out folds: one per group",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let rep = dir.path().join(format!("rep-{case}"));
        let out = replicate_one_epoch(&store, "daam-v2", &rep, extra);
        refusals.check(&out, expected, &rep);
    }
    let rep = dir.path().join("rep-methods");
    let out = replicate_one_epoch(&store, "mha,daam-v2,mha", &rep, &[]);
    refusals.check(&out, "--methods: `mha` is named twice", &rep);
    refusals.assert_all();
}

/// Ctrl-C or SIGTERM during `replicate` keeps the finished runs, says so, and exits with
/// status 130, so that a script's `classify replicate … && next` stops there (it exited 1, the
/// status of a failure, while `vqvae train` and `classify extract` exited 130). The folder is
/// free again afterwards.
#[cfg(unix)]
#[test]
fn an_interrupted_replication_exits_130_and_frees_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 4);
    for signal in ["-INT", "-TERM"] {
        let out = dir.path().join(format!("rep{signal}"));
        let mut child = crate::spawn_classify(&[
            "replicate",
            "--task",
            "iemocap",
            "--embeddings",
            path(&store),
            "--methods",
            "mha",
            "--epochs",
            "100000",
            "--out",
            path(&out),
        ]);
        let runs = out.join("runs").join("mha");
        crate::wait_until(&mut child, || runs.exists());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let output = crate::signal(child, signal);
        let message = text(&output);
        assert_eq!(output.status.code(), Some(130), "{signal}: {message}");
        assert!(
            message.contains("interrupted: finished runs are kept in"),
            "{signal}: {message}"
        );
        assert!(!message.contains("error:"), "{signal}: {message}");
        assert!(out.join("replicate.json").is_file());
        drop(daam::folder_lock::lock_folder(&out).expect("the folder is free again"));
    }
}

/// A rerun into a replication's folder keeps its finished runs only on the store they were
/// trained on, known by its fingerprint (items and features), not its path: another store, or
/// the same path regenerated with other data, is refused naming both before anything is
/// written (the old runs were kept and replicate.json renamed the new store); a moved copy
/// resumes; a replicate.json from before fingerprints is accepted with a note, unless its runs'
/// item counts show another store. `report` refuses a store changed since.
#[test]
fn a_replication_continues_only_on_the_store_it_was_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let (store, other) = (dir.path().join("store"), dir.path().join("other"));
    synth(&store, 40, 4);
    synth_with(&other, 40, 4, &["--seed", "9"]);
    let rep = dir.path().join("rep");
    let done = replicate_one_epoch(&store, "daam-v2", &rep, &[]);
    assert!(done.status.success(), "{}", text(&done));
    let report_md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    let record_path = rep.join("replicate.json");
    let record = std::fs::read_to_string(&record_path).unwrap();
    assert!(
        record.contains("\"stores\"") && record.contains("\"features\""),
        "{record}"
    );

    let mut refusals = Refusals::default();
    // Another store, and the same path regenerated with another seed (same ids and labels,
    // other features).
    let regenerated = dir.path().join("regenerated");
    synth(&regenerated, 40, 4);
    let rep2 = dir.path().join("rep2");
    let done = replicate_one_epoch(&regenerated, "daam-v2", &rep2, &[]);
    assert!(done.status.success(), "{}", text(&done));
    std::fs::remove_dir_all(&regenerated).unwrap();
    synth_with(&regenerated, 40, 4, &["--seed", "5"]);
    for (embeddings, out, changed) in [
        (&other, &rep, "train.features"),
        (&regenerated, &rep2, "train.features"),
    ] {
        let before = std::fs::read_to_string(out.join("replicate.json")).unwrap();
        let refused = replicate_one_epoch(embeddings, "daam-v2,mha", out, &[]);
        let trained_on = if out == &rep { &store } else { &regenerated };
        refusals.check(
            &refused,
            &format!(
                "this --out folder holds a replication of another store: its runs were trained \
                 on {} as it was then, and --embeddings {} holds other data (",
                trained_on.display(),
                embeddings.display()
            ),
            &out.join("runs/mha"),
        );
        refusals.expect(text(&refused).contains(changed), || text(&refused));
        let after = std::fs::read_to_string(out.join("replicate.json")).unwrap();
        refusals.expect(after == before, || {
            format!("replicate.json rewritten:\n{after}")
        });
    }
    refusals.expect(
        std::fs::read_to_string(rep.join("report.md")).unwrap() == report_md,
        || "report.md rewritten".to_owned(),
    );
    // `report` on the regenerated store is refused too.
    let out = classify(&[
        "report",
        "--replication",
        path(&rep2),
        "--method",
        "daam-v2",
    ]);
    refusals.check(
        &out,
        "now holds other data (train.features",
        &rep2.join("runs/daam-v2/fold-1/interpretation"),
    );
    refusals.assert_all();

    // A copy of the store elsewhere is the same store: the runs are kept, the path updated.
    let moved = dir.path().join("moved");
    std::fs::create_dir(&moved).unwrap();
    for entry in std::fs::read_dir(&store).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_file() {
            std::fs::copy(&entry, moved.join(entry.file_name().unwrap())).unwrap();
        }
    }
    let resumed = replicate_one_epoch(&moved, "daam-v2", &rep, &[]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(
        text(&resumed).matches("done before, kept").count(),
        4,
        "{}",
        text(&resumed)
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["embeddings"], path(&moved));

    // A replicate.json from before fingerprints: kept on trust, with a note, and recorded now.
    let mut old = record.clone();
    old.as_object_mut().unwrap().remove("stores");
    std::fs::write(&record_path, old.to_string()).unwrap();
    let resumed = replicate_one_epoch(&moved, "daam-v2", &rep, &[]);
    let message = text(&resumed);
    assert!(resumed.status.success(), "{message}");
    assert!(
        message.contains("records no fingerprint of its store (written by an older classify)")
            && message.contains("done before, kept"),
        "{message}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["stores"]["train"]["count"], 40, "{record}");

    // Without a fingerprint, a store that splits into other item counts than the finished
    // runs record is still known for another store, and refused.
    std::fs::write(&record_path, old.to_string()).unwrap();
    let bigger = dir.path().join("bigger");
    synth(&bigger, 48, 4);
    let refused = replicate_one_epoch(&bigger, "daam-v2", &rep, &[]);
    let mut refusals = Refusals::default();
    refusals.check(
        &refused,
        "holds a replication of another store (written by an older classify, without a \
         fingerprint of its store):",
        &rep.join("runs/mha"),
    );
    refusals.expect(
        text(&refused).contains("result.json trained on") && text(&refused).contains("fold-1"),
        || text(&refused),
    );
    refusals.assert_all();
}

/// `replicate --out` refuses a folder that is not a replication and holds files (its
/// report.md was replaced), and the --embeddings folder or one inside it (runs and reports
/// were written among the store's shards), before anything is written.
#[test]
fn an_out_folder_that_is_not_a_replication_or_lies_in_the_store_is_refused() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 4);
    let notes = dir.path().join("notes");
    std::fs::create_dir_all(notes.join("drafts")).unwrap();
    for file in ["report.md", "a.txt", "b.txt", "c.txt"] {
        std::fs::write(notes.join(file), "my notes").unwrap();
    }
    let out = replicate_one_epoch(&store, "mha", &notes, &[]);
    refusals.check(
        &out,
        &format!(
            "--out: {} holds `a.txt`, `b.txt`, `c.txt` and 2 more but no replicate.json: it is \
             not a replication",
            notes.display()
        ),
        &notes.join("runs"),
    );
    refusals.expect(
        std::fs::read_to_string(notes.join("report.md")).unwrap() == "my notes",
        || "report.md was overwritten".to_owned(),
    );
    for (out, place) in [
        (store.clone(), "is the"),
        (store.join("runs/sub"), "is inside the"),
    ] {
        let output = replicate_one_epoch(&store, "mha", &out, &[]);
        refusals.check(
            &output,
            &format!(
                "--out: {} {place} --embeddings folder {}: runs/ and the report files",
                out.display(),
                store.display()
            ),
            &store.join("runs"),
        );
    }
    refusals.assert_all();
    // A folder holding only the lock a refused run left is empty.
    let fresh = dir.path().join("fresh");
    drop(daam::folder_lock::lock_folder(&fresh).unwrap());
    let out = replicate_one_epoch(&store, "mha", &fresh, &[]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `validate` warns, exit status 0, about stores that read but mislead (one class, one group,
/// a tiny group, a repeated or empty class name, no items), and `replicate` shows the warnings
/// before it trains; a folder of `train/` and `test/` stores is validated store by store.
#[test]
fn validate_warns_about_misleading_stores_and_reads_split_folders() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 5] = [
        (
            "one-class",
            |store| synth_with(store, 40, 4, &["--classes", "1"]),
            "warning: every item has label 0 (`class-0`): a classifier has nothing to tell apart",
        ),
        (
            "one-group",
            |store| synth(store, 40, 1),
            "warning: every item is in group 0: leave-one-group-out folds",
        ),
        (
            "small-group",
            |store| synth(store, 36, 4),
            "warning: groups 0 (9 items), 1 (9 items), 2 (9 items), 3 (9 items) have fewer \
             than 10 items",
        ),
        (
            "repeated-name",
            |store| {
                synth(store, 40, 4);
                let manifest = store.join("manifest.json");
                let text = std::fs::read_to_string(&manifest).unwrap();
                std::fs::write(&manifest, text.replace("\"class-2\"", "\"class-0\"")).unwrap();
            },
            "warning: classes 0 and 2 are both named `class-0`",
        ),
        (
            "empty",
            |store| {
                synth(store, 40, 4);
                let manifest = store.join("manifest.json");
                let mut value: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
                value["count"] = 0.into();
                value["shards"] = serde_json::json!([]);
                std::fs::write(&manifest, value.to_string()).unwrap();
            },
            "0 shards, 0 items checked, 0 problems, 1 warning\n  warning: the store holds no item",
        ),
    ];
    for (name, make, expected) in cases {
        let store = dir.path().join(name);
        make(&store);
        let out = classify(&["validate", path(&store)]);
        refusals.expect(
            out.status.success() && text(&out).contains(expected),
            || format!("validate {name}: expected `{expected}`:\n{}", text(&out)),
        );
    }
    let runs = dir.path().join("runs-small-group");
    let out = replicate_one_epoch(&dir.path().join("small-group"), "mha", &runs, &[]);
    let message = text(&out);
    let warned = message.find("warning: groups 0 (9 items)");
    let trained = message.find("[1/4] mha fold-1");
    refusals.expect(
        out.status.success() && warned.is_some() && warned < trained,
        || format!("replicate shows no warning before training:\n{message}"),
    );

    let split = dir.path().join("split");
    synth_with(&split, 40, 1, &["--split"]);
    let out = classify(&["validate", path(&split)]);
    let expected = format!(
        "{0} holds no manifest.json but the stores {0}/train and {0}/test: validating each\n\
         {0}/train: 1 shard, 40 items checked, 0 problems, 0 warnings\n\
         {0}/test: 1 shard, 10 items checked, 0 problems, 0 warnings",
        split.display()
    );
    refusals.expect(
        out.status.success() && text(&out).contains(&expected),
        || format!("expected\n{expected}\ngot:\n{}", text(&out)),
    );
    std::fs::remove_file(split.join("test/shard-00000.safetensors")).unwrap();
    let out = classify(&["validate", path(&split)]);
    refusals.check(
        &out,
        &format!("{}/test has problems", split.display()),
        &dir.path().join("nothing"),
    );
    refusals.expect(text(&out).contains("shard file is missing"), || text(&out));
    refusals.assert_all();
}

/// The seeded protocols score on the test store: one that is the train store (a link) or was
/// made otherwise (another encoder, pooling, chunk length or token limit) is refused.
#[test]
fn train_and_test_stores_must_be_two_stores_made_alike() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    synth_with(&split, 40, 1, &["--split"]);
    let replicate = |embeddings: &Path, out: &Path| {
        classify(&[
            "replicate",
            "--task",
            "cifar100",
            "--embeddings",
            path(embeddings),
            "--methods",
            "mha",
            "--epochs",
            "1",
            "--runs",
            "1",
            "--out",
            path(out),
        ])
    };
    #[cfg(unix)]
    {
        let linked = dir.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(split.join("train"), linked.join("train")).unwrap();
        std::os::unix::fs::symlink(split.join("train"), linked.join("test")).unwrap();
        let out = dir.path().join("rep-linked");
        refusals.check(
            &replicate(&linked, &out),
            "is the train store",
            &out.join("replicate.json"),
        );
    }
    let manifest = split.join("test/manifest.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    for (field, value, expected) in [
        (
            "encoder",
            serde_json::json!("other"),
            "encoder `synthetic` / `other`",
        ),
        (
            "max_tokens",
            serde_json::json!(16),
            "max_tokens None / Some(16)",
        ),
    ] {
        let mut edited: serde_json::Value = serde_json::from_str(&original).unwrap();
        edited[field] = value;
        std::fs::write(&manifest, edited.to_string()).unwrap();
        let out = dir.path().join(format!("rep-{field}"));
        refusals.check(
            &replicate(&split, &out),
            &format!("the train and test stores were not made alike ({expected})"),
            &out.join("replicate.json"),
        );
    }
    std::fs::write(&manifest, original).unwrap();
    let out = dir.path().join("rep");
    let done = replicate(&split, &out);
    assert!(done.status.success(), "{}", text(&done));
    refusals.assert_all();
}

/// A rerun with fewer runs or other methods keeps the earlier finished runs: `replicate` says
/// so, naming them, and the report places every score under its own seed and marks the methods
/// with fewer runs (`(n = 1)`) instead of shifting their cells under other seeds.
#[test]
fn reruns_with_other_runs_say_which_runs_the_report_mixes() {
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("split");
    synth_with(&split, 40, 1, &["--split"]);
    let out = dir.path().join("rep");
    let replicate = |methods: &str, runs: &str| {
        classify(&[
            "replicate",
            "--task",
            "cifar100",
            "--embeddings",
            path(&split),
            "--methods",
            methods,
            "--epochs",
            "1",
            "--runs",
            runs,
            "--out",
            path(&out),
        ])
    };
    let first = replicate("mha", "3");
    assert!(first.status.success(), "{}", text(&first));
    assert!(!text(&first).contains("does not plan"), "{}", text(&first));
    // mha's seed-3 as an interrupted run leaves it: metrics, no result.json.
    std::fs::remove_file(out.join("runs/mha/seed-3/result.json")).unwrap();
    let second = replicate("gqa", "1");
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains(
            "this --out folder also holds finished runs this replication does not plan: mha \
             (seed-1, seed-2)"
        ),
        "{}",
        text(&second)
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let gqa = report.lines().find(|l| l.starts_with("| gqa |")).unwrap();
    assert!(
        gqa.contains(" | – | ") && gqa.ends_with("(n = 1) |"),
        "{report}"
    );
    // The unfinished run is out of the tables, and said to be.
    assert!(
        report.contains("| method | R1 | R2 | mean ± σ |"),
        "{report}"
    );
    let mha = report.lines().find(|l| l.starts_with("| mha |")).unwrap();
    assert!(!mha.contains("(n ="), "{report}");
    assert!(
        report.contains(
            "Not in the tables, not finished (interrupted; rerun `replicate` to finish them): \
             mha/seed-3 (1 epoch logged)."
        ),
        "{report}"
    );
}

/// Options that would be ignored, an `--out` that is a file, and a run that has not started
/// are refused with what to do, before anything is written.
#[test]
fn ignored_options_file_outs_and_unstarted_runs_are_named() {
    let mut refusals = Refusals::default();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    synth(&store, 40, 4);
    let out = dir.path().join("rep");
    refusals.check(
        &replicate_one_epoch(&store, "mha", &out, &["--max-tokens", "8"]),
        "--max-tokens configure the LoRA baselines (lora-rN, loraplus-rN), and --methods names \
         none",
        &out,
    );
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep").unwrap();
    refusals.check(
        &replicate_one_epoch(&store, "mha", &file, &[]),
        &format!("--out: {} is a file, not a folder", file.display()),
        &dir.path().join("nothing"),
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    // A replication whose daam-v2 runs have not started (as after an interruption).
    let done = replicate_one_epoch(&store, "mha,daam-v2", &out, &[]);
    assert!(done.status.success(), "{}", text(&done));
    std::fs::remove_dir_all(out.join("runs/daam-v2")).unwrap();
    let report = classify(&["report", "--replication", path(&out), "--method", "daam-v2"]);
    refusals.check(
        &report,
        "run fold-1 of daam-v2 has not started",
        &out.join("runs/daam-v2"),
    );
    refusals.assert_all();
}

/// A diverged run (`--lr 1e30`: the loss became NaN at epoch 2) left a model whose density
/// weights are NaN: `report` printed `layer 0: NaN%`, wrote its plots and a JSON of nulls and
/// exited 0, and `--ablate` ranked the layers by NaN and retrained on them. Both are refused
/// now, naming the run, and nothing is written for it.
#[test]
fn a_diverged_run_is_neither_interpreted_nor_ablated() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let made = classify(&[
        "synth",
        "--out",
        path(&store),
        "--count",
        "16",
        "--layers",
        "8",
        "--d-model",
        "8",
        "--classes",
        "2",
        "--groups",
        "2",
        "--signal-layers",
        "1,2",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    // daam-v2 at a rate of 1e10 for `epochs` epochs into `out`.
    let diverging = |epochs: &str, out: &Path| {
        classify(&[
            "replicate",
            "--task",
            "iemocap",
            "--embeddings",
            path(&store),
            "--out",
            path(out),
            "--methods",
            "daam-v2",
            "--epochs",
            epochs,
            "--lr",
            "1e10",
        ])
    };
    let rep = dir.path().join("rep");
    let out = diverging("1", &rep);
    // Fold 2's outputs overflow in its first epoch: the run stops, recording nothing (its
    // accuracies were the argmax of NaN, and were reported). Fold 1's outputs on its
    // validation and dev items stayed finite, so it finished, but its densities are not.
    assert!(
        !out.status.success()
            && text(&out).contains(
                "fold-2: the run diverged at epoch 1: its outputs for 9 of the 9 validation and \
                 dev items are not finite"
            ),
        "the run did not diverge as expected:\n{}",
        text(&out)
    );
    assert!(!rep.join("runs/daam-v2/fold-2/result.json").exists());
    // A second epoch leaves fold 1 with NaN weights whose outputs on those items are still
    // finite: the weights are checked too, and the run stops there.
    let rep2 = dir.path().join("rep2");
    let out = diverging("2", &rep2);
    assert!(
        !out.status.success()
            && text(&out).contains(
                "fold-1: the run diverged at epoch 2: 36876 of its 74394 parameters are not finite"
            ),
        "{}",
        text(&out)
    );
    assert!(!rep2.join("runs/daam-v2/fold-1/result.json").exists());
    let run = rep.join("runs/daam-v2/fold-1");
    let mut refusals = Refusals::default();
    for extra in [&[][..], &["--ablate", "2"][..]] {
        let args = [
            &["report", "--replication", path(&rep), "--method", "daam-v2"][..],
            extra,
        ]
        .concat();
        let out = classify(&args);
        refusals.check(
            &out,
            "error: run fold-1 of daam-v2: the run diverged: 48 of its 64 density attention \
             values are not finite (NaN or ±inf), so its Importance Factors mean nothing; \
             nothing was interpreted or ablated: retrain it (e.g. with a lower --lr)",
            &run.join("interpretation"),
        );
        refusals.expect(!rep.join("ablation").exists(), || {
            format!("--ablate wrote {}", rep.join("ablation").display())
        });
    }
    refusals.assert_all();
}
