//! `classify extract` through the real binary, on the tiny random checkpoints of the `encoders`
//! crate's fixtures and small datasets in the real on-disk formats that the tests write.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::Flex;
use datasets::EmbeddingStore;
use encoders::beit::Beit;
use encoders::ImagePreprocessor;

use crate::{spawn_classify, wait_until, Refusals};

fn encoder_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../encoders/tests/fixtures")
        .join(name)
}

fn classify(args: &[&str]) -> Output {
    classify_with(args, &[])
}

/// `classify` with extra environment variables.
fn classify_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the classify binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A `cifar-100-binary/`-like folder with `train` and `test` records of seeded pixels.
fn write_cifar(dir: &Path, train: usize, test: usize) {
    fs::create_dir_all(dir).unwrap();
    let names: String = (0..100).map(|i| format!("class_{i}\n")).collect();
    fs::write(dir.join("fine_label_names.txt"), names).unwrap();
    let mut state = 12345u32;
    for (split, count) in [("train", train), ("test", test)] {
        let mut bytes = Vec::new();
        for i in 0..count {
            bytes.push((i % 20) as u8);
            bytes.push((i * 7 % 100) as u8);
            for _ in 0..3072 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                bytes.push((state >> 16) as u8);
            }
        }
        fs::write(dir.join(format!("{split}.bin")), bytes).unwrap();
    }
}

/// `classify extract --encoder ENCODER --weights <its fixture> --task TASK --data DATA --out OUT
/// EXTRA...` with extra environment variables.
fn extract_with(
    (encoder, task): (&str, &str),
    data: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    extract_from(
        &encoder_fixture(encoder),
        (encoder, task),
        data,
        out,
        extra,
        env,
    )
}

/// [`extract_with`] of the checkpoint in `weights`.
fn extract_from(
    weights: &Path,
    (encoder, task): (&str, &str),
    data: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut args = vec![
        "extract",
        "--encoder",
        encoder,
        "--weights",
        weights.to_str().unwrap(),
        "--task",
        task,
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    classify_with(&args, env)
}

fn extract_beit(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--batch-size", "2", "--shard-size", "2"];
    args.extend_from_slice(extra);
    extract_with(("beit", "cifar100"), data, out, &args, &[])
}

#[test]
fn beit_over_cifar100_writes_train_and_test_stores_equal_to_the_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    let out = tmp.path().join("store");
    write_cifar(&data, 5, 3);
    let output = extract_beit(&data, &out, &["--dtype", "f32"]);
    assert!(output.status.success(), "{}", text(&output));

    let train = EmbeddingStore::open(&out.join("train")).unwrap();
    let test = EmbeddingStore::open(&out.join("test")).unwrap();
    assert_eq!((train.len(), test.len()), (5, 3));
    assert_eq!((train.num_layers(), train.d_model()), (2, 32));
    assert_eq!(train.labels(), &[0, 7, 14, 21, 28]);
    assert_eq!(train.class_names().len(), 100);
    assert_eq!(test.ids(), &["test/0", "test/1", "test/2"]);

    // Item 3 of the store is what the encoder gives on that image directly.
    let cifar = datasets::Cifar100::open(&data, datasets::Split::Train).unwrap();
    let device = Default::default();
    let model = Beit::<Flex>::load(encoder_fixture("beit"), &device).unwrap();
    let pixels = ImagePreprocessor::square(32)
        .batch::<Flex>(&[cifar.image(3)], &device)
        .unwrap();
    let direct: Vec<f32> = model
        .forward(pixels)
        .unwrap()
        .pooled_layers()
        .into_data()
        .into_vec()
        .unwrap();
    let stored = train.gather(&[3]);
    assert_eq!(stored.len(), direct.len());
    for (a, b) in stored.iter().zip(&direct) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    // A second run finds everything done.
    let output = extract_beit(&data, &out, &["--dtype", "f32"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("0 items in"), "{}", text(&output));
    // Other settings on the same store are refused, naming it.
    let output = extract_beit(&data, &out, &["--dtype", "f16"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("other settings (dtype: f32 → f16)")
            && text(&output).contains("train"),
        "{}",
        text(&output)
    );
}

/// One process per store folder: while another holds `--out` (this test, through the same
/// lock), `extract` is refused naming its pid and stores nothing; released, it runs.
#[test]
fn a_store_folder_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar");
    write_cifar(&data, 4, 2);
    let out = dir.path().join("store");
    let held = daam::folder_lock::lock_folder(&out).unwrap();
    let refused = extract_with(("beit", "cifar100"), &data, &out, &[], &[]);
    let message = text(&refused);
    assert!(!refused.status.success(), "{message}");
    assert!(
        message.contains(&format!(
            "is in use by another process (pid {}), writing the embedding store",
            std::process::id()
        )),
        "{message}"
    );
    assert!(!out.join("train").exists(), "{message}");
    drop(held);
    let done = extract_with(("beit", "cifar100"), &data, &out, &[], &[]);
    assert!(done.status.success(), "{}", text(&done));
}

/// `extract` of the `train` split of the CIFAR folder `data` into `out` with the BEiT fixture
/// `weights`, two items a shard and a 300 ms pause after each: slow enough to stop midway.
fn paused_extraction<'a>(weights: &'a Path, data: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "extract",
        "--encoder",
        "beit",
        "--weights",
        weights.to_str().unwrap(),
        "--task",
        "cifar100",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--split",
        "train",
        "--batch-size",
        "2",
        "--shard-size",
        "2",
        "--pause-ms",
        "300",
    ]
}

#[test]
fn a_killed_extraction_completes_on_rerun_with_every_item_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    let out = tmp.path().join("store");
    write_cifar(&data, 24, 1);
    let weights = encoder_fixture("beit");
    let mut child = spawn_classify(&paused_extraction(&weights, &data, &out));
    // Kill it once a few shards are on disk, while it is still running.
    let manifest = out.join("train/manifest.json");
    wait_until(&mut child, || {
        fs::read_to_string(&manifest)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["count"].as_u64())
            .is_some_and(|count| count >= 6)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = EmbeddingStore::open(&out.join("train")).unwrap().len();
    assert!(
        (6..24).contains(&partial),
        "{partial} items before the kill"
    );

    let output = extract_beit(&data, &out, &["--split", "train"]);
    assert!(output.status.success(), "{}", text(&output));
    let store = EmbeddingStore::open(&out.join("train")).unwrap();
    let mut ids = store.ids().to_vec();
    assert_eq!(ids.len(), 24);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24, "an item is duplicated");
    assert!(
        text(&output).contains(&format!("({} computed now", 24 - partial)),
        "{}",
        text(&output)
    );
    let report = datasets::validate_store(&out.join("train"));
    let report = report.unwrap();
    assert!(report.is_ok(), "{report}");
}

/// Ctrl-C or SIGTERM stops an extraction after its current shard: the store on disk is valid,
/// the message says how to go on, the status is 130 (so `extract … && replicate …` does not
/// train on a partial store), and the rerun completes it with each item once.
#[cfg(unix)]
#[test]
fn an_interrupted_extraction_exits_130_with_a_valid_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    write_cifar(&data, 24, 1);
    let weights = encoder_fixture("beit");
    for signal in ["-INT", "-TERM"] {
        let out = tmp.path().join(format!("store{signal}"));
        let mut child = spawn_classify(&paused_extraction(&weights, &data, &out));
        let manifest = out.join("train/manifest.json");
        wait_until(&mut child, || manifest.exists());
        let output = crate::signal(child, signal);
        let message = text(&output);
        assert_eq!(output.status.code(), Some(130), "{signal}: {message}");
        assert!(
            message.contains("interrupted: the shards written so far are kept"),
            "{signal}: {message}"
        );
        let report = datasets::validate_store(&out.join("train")).unwrap();
        assert!(report.is_ok(), "{signal}: {report}");
        let partial = EmbeddingStore::open(&out.join("train")).unwrap().len();
        assert!(
            partial < 24,
            "{signal}: {partial} items: it was not interrupted"
        );
        let output = extract_beit(&data, &out, &["--split", "train"]);
        assert!(output.status.success(), "{}", text(&output));
        let mut ids = EmbeddingStore::open(&out.join("train"))
            .unwrap()
            .ids()
            .to_vec();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 24, "{signal}: an item is missing or duplicated");
    }
}

fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        writer.write_sample((s * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// An `IEMOCAP_full_release/`-like tree: per turn `(session, dialog, turn, category, sample
/// rate, samples)`, its label line and a seeded sine WAV.
fn write_iemocap(root: &Path, turns: &[(u32, &str, &str, &str, u32, usize)]) {
    for session in 1..=5 {
        fs::create_dir_all(root.join(format!("Session{session}/dialog/EmoEvaluation"))).unwrap();
    }
    for &(session, dialog, turn, category, rate, n) in turns {
        let labels = root.join(format!(
            "Session{session}/dialog/EmoEvaluation/{dialog}.txt"
        ));
        let line = format!("[1.0 - 2.0]\t{turn}\t{category}\t[2.5, 2.5, 2.5]\n\n");
        let mut old = fs::read_to_string(&labels).unwrap_or_default();
        old.push_str(&line);
        fs::write(&labels, old).unwrap();
        let wav_dir = root.join(format!("Session{session}/sentences/wav/{dialog}"));
        fs::create_dir_all(&wav_dir).unwrap();
        let samples: Vec<f32> = (0..n)
            .map(|i| 0.3 * (i as f32 * 0.05 * (session as f32)).sin())
            .collect();
        write_wav(&wav_dir.join(format!("{turn}.wav")), rate, &samples);
    }
}

/// An IEMOCAP tree of sessions 1 and 2 with `per_session` turns each (`SesNNF_impro01_FKKK`,
/// labels alternating `neu` / `ang`, 6,000 then 3,000 samples at 16 kHz).
fn write_two_sessions(root: &Path, per_session: usize) {
    let turns: Vec<(u32, String, String, &str, u32, usize)> = (1..=2)
        .flat_map(|session| {
            (0..per_session).map(move |k| {
                let dialog = format!("Ses0{session}F_impro01");
                let turn = format!("{dialog}_F{k:03}");
                let label = ["neu", "ang"][(k + session as usize) % 2];
                (session, dialog, turn, label, 16_000, [6_000, 3_000][k % 2])
            })
        })
        .collect();
    let borrowed: Vec<(u32, &str, &str, &str, u32, usize)> = turns
        .iter()
        .map(|(s, d, t, l, r, n)| (*s, d.as_str(), t.as_str(), *l, *r, *n))
        .collect();
    write_iemocap(root, &borrowed);
}

#[test]
fn wavlm_over_iemocap_chunks_utterances_and_keeps_sessions_as_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("IEMOCAP_full_release");
    let turns = [
        (
            1,
            "Ses01F_impro01",
            "Ses01F_impro01_F000",
            "neu",
            16_000,
            6_000,
        ),
        (
            1,
            "Ses01F_impro01",
            "Ses01F_impro01_M000",
            "exc",
            8_000,
            1_500,
        ),
        (
            2,
            "Ses02M_script01_1",
            "Ses02M_script01_1_F003",
            "ang",
            16_000,
            3_000,
        ),
        (
            4,
            "Ses04F_impro02",
            "Ses04F_impro02_M001",
            "sad",
            16_000,
            4_000,
        ),
        (
            4,
            "Ses04F_impro02",
            "Ses04F_impro02_F001",
            "hap",
            16_000,
            2_500,
        ),
    ];
    write_iemocap(&root, &turns);
    // A corrupt file is skipped and named; the others are extracted.
    fs::write(
        root.join("Session4/sentences/wav/Ses04F_impro02/Ses04F_impro02_F001.wav"),
        b"RIFF\x10\x00\x00\x00WAVEjunk",
    )
    .unwrap();
    let out = tmp.path().join("store");
    let output = extract_with(
        ("wavlm", "iemocap"),
        &root,
        &out,
        &["--chunk-seconds", "0.25", "--batch-size", "3"],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("Ses04F_impro02_F001.wav"),
        "the corrupt file is named: {}",
        text(&output)
    );
    let store = EmbeddingStore::open(&out).unwrap();
    // 6000 samples → 2 chunks of 4000; 1500 at 8 kHz → 3000 → 1; 3000 → 1; 4000 → 1.
    assert_eq!(
        store.ids(),
        &[
            "Ses01F_impro01_F000#0",
            "Ses01F_impro01_F000#1",
            "Ses01F_impro01_M000#0",
            "Ses02M_script01_1_F003#0",
            "Ses04F_impro02_M001#0",
        ]
    );
    assert_eq!(store.groups(), &[1, 1, 1, 2, 4]);
    // neu 0, hap(exc) 1, ang 2, sad 3.
    assert_eq!(store.labels(), &[0, 0, 1, 2, 3]);
    assert_eq!((store.num_layers(), store.d_model()), (2, 32));
    let features = store.gather(&[0, 1]);
    assert!(features.iter().all(|v| v.is_finite()));
    assert_ne!(features[..64], features[64..], "chunks differ");
}

/// An `ag_news_csv/`-like folder: three training texts of different lengths, one test text.
fn write_ag_news(data: &Path) {
    fs::create_dir_all(data).unwrap();
    fs::write(
        data.join("classes.txt"),
        "World\nSports\nBusiness\nSci/Tech\n",
    )
    .unwrap();
    fs::write(
        data.join("train.csv"),
        "\"3\",\"the sand\",\"is wet.\"\n\"1\",\"a\",\"longer one, with more words in it\"\n\"4\",\"x\",\"y\"\n",
    )
    .unwrap();
    fs::write(data.join("test.csv"), "\"2\",\"sport\",\"news\"\n").unwrap();
}

#[test]
fn llama_over_ag_news_tokenizes_and_pools_each_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ag_news_csv");
    write_ag_news(&data);
    let out = tmp.path().join("store");
    let llama = ("llama", "agnews");
    let output = extract_with(llama, &data, &out, &["--batch-size", "2"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let train = EmbeddingStore::open(&out.join("train")).unwrap();
    assert_eq!(train.labels(), &[2, 0, 3]);
    assert_eq!(EmbeddingStore::open(&out.join("test")).unwrap().len(), 1);

    // Padding does not change a text's features: text 0 batched with the longer text 1 equals
    // text 0 alone (batch size 1).
    let alone = tmp.path().join("alone");
    let output = extract_with(
        llama,
        &data,
        &alone,
        &["--split", "train", "--batch-size", "1", "--dtype", "f32"],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let single = EmbeddingStore::open(&alone.join("train"))
        .unwrap()
        .gather(&[0]);
    let batched = train.gather(&[0]);
    for (a, b) in single.iter().zip(&batched) {
        // The batched store is f16.
        assert!((a - b).abs() <= 2e-3 * a.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn lora_baselines_replicate_on_the_extracted_store_and_enter_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    let out = tmp.path().join("store");
    write_cifar(&data, 12, 4);
    let output = extract_beit(&data, &out, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let weights = encoder_fixture("beit");
    let rep = tmp.path().join("rep");
    let mut args = vec![
        "replicate",
        "--task",
        "cifar100",
        "--embeddings",
        out.to_str().unwrap(),
        "--methods",
        "lora-r2,loraplus-r2",
        "--epochs",
        "2",
        "--runs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--out",
        rep.to_str().unwrap(),
    ];
    // Without the encoder and data the LoRA methods are refused, naming what is missing.
    let output = classify(&args);
    assert!(!output.status.success());
    assert!(text(&output).contains("--weights"), "{}", text(&output));

    args.extend([
        "--encoder",
        "beit",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let output = classify(&args);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    let rendered = report.to_string();
    assert!(
        rendered.contains("lora-r2") && rendered.contains("loraplus-r2"),
        "{rendered}"
    );
    for method in ["lora-r2", "loraplus-r2"] {
        for run in ["seed-1", "seed-2"] {
            let dir = rep.join("runs").join(method).join(run);
            let metrics = fs::read_to_string(dir.join("metrics.csv")).unwrap();
            assert_eq!(metrics.lines().count(), 3, "{metrics}");
            let result: serde_json::Value =
                serde_json::from_str(&fs::read_to_string(dir.join("result.json")).unwrap())
                    .unwrap();
            // 2 layers × (query, value) × r·(32 + 32) + the 100-way classifier (32·100 + 100).
            assert_eq!(result["trainable_params"], 2 * 2 * 2 * 64 + 3300);
            // Items: the dev split is carved from the 12 training items; 4 test items.
            assert_eq!(result["items"][2], 4);
        }
    }
    // A rerun keeps the finished runs.
    let output = classify(&args);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("done before, kept"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_lora_run_learns_a_brightness_task() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    fs::create_dir_all(&data).unwrap();
    let names: String = (0..100).map(|i| format!("class_{i}\n")).collect();
    fs::write(data.join("fine_label_names.txt"), names).unwrap();
    let mut state = 7u32;
    for (split, count) in [("train", 24), ("test", 12)] {
        let mut bytes = Vec::new();
        for i in 0..count {
            let bright = i % 2 == 1;
            bytes.extend([0u8, bright as u8]);
            for _ in 0..3072 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let noise = (state >> 16) as u8 % 64;
                bytes.push(if bright { 191 + noise } else { noise });
            }
        }
        fs::write(data.join(format!("{split}.bin")), bytes).unwrap();
    }
    let store = tmp.path().join("store");
    let output = extract_beit(&data, &store, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let weights = encoder_fixture("beit");
    // One seeded run of `method` for `epochs` epochs at rate `lr` into `out`.
    let replicate = |method: &str, epochs: &str, lr: &str, out: &Path| {
        classify(&[
            "replicate",
            "--task",
            "cifar100",
            "--embeddings",
            store.to_str().unwrap(),
            "--methods",
            method,
            "--epochs",
            epochs,
            "--runs",
            "1",
            "--batch-size",
            "4",
            "--lr",
            lr,
            "--dev-fraction",
            "0",
            "--encoder",
            "beit",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let rep = tmp.path().join("rep");
    let output = replicate("loraplus-r2", "8", "3e-3", &rep);
    assert!(output.status.success(), "{}", text(&output));
    let metrics = fs::read_to_string(rep.join("runs/loraplus-r2/seed-1/metrics.csv")).unwrap();
    let rows: Vec<Vec<f64>> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let (first, last) = (&rows[0], &rows[rows.len() - 1]);
    assert!(last[1] < first[1], "the training loss falls: {metrics}");
    assert!(last[3] >= 0.9, "dark vs bright is learnt: {metrics}");

    // At a rate of 1e5 every loss of the first epoch is finite, but the adapted encoder's
    // outputs are not: the run stops as diverged, recording nothing (its argmax-of-NaN
    // accuracies were recorded as a result).
    let rep = tmp.path().join("rep-diverged");
    let output = replicate("lora-r2", "1", "1e5", &rep);
    assert!(
        !output.status.success()
            && text(&output).contains(
                "lora-r2/seed-1: the run diverged at epoch 1: its outputs for 12 of the 12 \
                 validation and dev items are not finite"
            ),
        "{}",
        text(&output)
    );
    assert!(!rep.join("runs/lora-r2/seed-1/result.json").exists());
}

#[test]
fn bad_weights_folders_are_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    write_cifar(&data, 2, 1);
    let out = tmp.path().join("store");
    let missing = tmp.path().join("no-such-checkpoint");
    let run = |weights: &Path, encoder: &str| {
        classify(&[
            "extract",
            "--encoder",
            encoder,
            "--weights",
            weights.to_str().unwrap(),
            "--task",
            "cifar100",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let output = run(&missing, "beit");
    assert!(!output.status.success());
    assert!(
        text(&output).contains("no-such-checkpoint") && text(&output).contains("config.json"),
        "{}",
        text(&output)
    );
    // BEiT asked of a WavLM checkpoint.
    let output = run(&encoder_fixture("wavlm"), "beit");
    assert!(!output.status.success());
    assert!(
        text(&output).contains("model_type is `wavlm`, but --encoder beit was asked for"),
        "{}",
        text(&output)
    );
    assert!(
        !out.join("train/manifest.json").exists(),
        "no store is started"
    );
}

/// A store is only resumed by a run that would write the same items: another `--data`
/// (whose records do not include the store's items) or another `--chunk-seconds` is refused
/// before anything is computed (both were accepted and the store reported complete, or mixed
/// 5-s and 1-s chunks). Stores written before the manifest named the chunk length resume with
/// the default.
#[test]
fn a_store_resumes_only_with_its_data_and_chunk_length() {
    let tmp = tempfile::tempdir().unwrap();
    let many = tmp.path().join("cifar-many");
    let few = tmp.path().join("cifar-few");
    write_cifar(&many, 6, 1);
    write_cifar(&few, 3, 1);
    let store = tmp.path().join("images");
    let output = extract_beit(&many, &store, &["--split", "train"]);
    assert!(output.status.success(), "{}", text(&output));
    let output = extract_beit(&few, &store, &["--split", "train"]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains("the data (the --data split's files or records differ"),
        "{message}"
    );
    // A store from before the data's digest was recorded: its items are checked against the
    // records instead.
    let manifest_path = store.join("train/manifest.json");
    let recorded = fs::read_to_string(&manifest_path).unwrap();
    let mut legacy: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    legacy
        .as_object_mut()
        .unwrap()
        .remove("source_digest")
        .unwrap();
    fs::write(&manifest_path, legacy.to_string()).unwrap();
    let output = extract_beit(&few, &store, &["--split", "train"]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains("3 of its 6 items (train/3, …) are not in")
            && message.contains("the store was extracted from other data"),
        "{message}"
    );
    fs::write(&manifest_path, recorded).unwrap();
    // Other records under the same ids (one pixel byte of record 5 changed): the data's digest.
    let other = tmp.path().join("cifar-other");
    write_cifar(&other, 6, 1);
    let bin = other.join("train.bin");
    let mut bytes = fs::read(&bin).unwrap();
    bytes[5 * 3074 + 100] ^= 0xff;
    fs::write(&bin, bytes).unwrap();
    let output = extract_beit(&other, &store, &["--split", "train"]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains("the data (the --data split's files or records differ"),
        "{message}"
    );
    // The same weights in a renamed folder resume; other weights in a folder of the same name
    // (one byte of the last tensor changed) are refused.
    let copy = |to: &Path| {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(encoder_fixture("beit")).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    };
    let (renamed, lookalike) = (tmp.path().join("renamed"), tmp.path().join("b/beit"));
    copy(&renamed);
    copy(&lookalike);
    let tensors = lookalike.join("model.safetensors");
    let mut bytes = fs::read(&tensors).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    fs::write(&tensors, bytes).unwrap();
    let beit = ("beit", "cifar100");
    let args = ["--split", "train", "--batch-size", "2", "--shard-size", "2"];
    let output = extract_from(&renamed, beit, &many, &store, &args, &[]);
    assert!(output.status.success(), "renamed: {}", text(&output));
    let output = extract_from(&lookalike, beit, &many, &store, &args, &[]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains("the checkpoint's files (another model in a folder of the same name)"),
        "{message}"
    );
    // A trial run on fewer records, then the whole data: still resumes.
    let trial = tmp.path().join("trial");
    for extra in [
        &["--split", "train", "--limit", "2"][..],
        &["--split", "train"][..],
    ] {
        let output = extract_beit(&many, &trial, extra);
        assert!(output.status.success(), "{}", text(&output));
    }
    assert_eq!(EmbeddingStore::open(&trial.join("train")).unwrap().len(), 6);

    let iemocap = tmp.path().join("IEMOCAP_full_release");
    write_two_sessions(&iemocap, 1);
    let audio = tmp.path().join("audio");
    let wavlm = |extra: &[&str]| {
        let mut args = vec!["--batch-size", "1", "--shard-size", "1"];
        args.extend_from_slice(extra);
        extract_with(("wavlm", "iemocap"), &iemocap, &audio, &args, &[])
    };
    let output = wavlm(&["--limit", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let manifest_path = audio.join("manifest.json");
    let manifest = fs::read_to_string(&manifest_path).unwrap();
    assert!(
        manifest.contains("each 5-s chunk (80000 samples)"),
        "{manifest}"
    );
    let output = wavlm(&["--chunk-seconds", "0.25"]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains(
            "this store was written with other settings (pooling: mean over all frames of each \
             5-s chunk (80000 samples), padding included (as the reference) → mean over all \
             frames of each 0.25-s chunk (4000 samples), padding included (as the reference); \
             chunk_samples: Some(80000) → Some(4000))"
        ),
        "{message}"
    );
    // A manifest an earlier version wrote (its description, no chunk length) stands for the
    // default chunk length.
    let mut legacy: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    legacy["pooling"] =
        "mean over all frames of each 5-s chunk, padding included (as the reference)".into();
    legacy
        .as_object_mut()
        .unwrap()
        .remove("chunk_samples")
        .unwrap();
    fs::write(&manifest_path, legacy.to_string()).unwrap();
    let output = wavlm(&["--chunk-seconds", "0.25"]);
    assert!(!output.status.success(), "{}", text(&output));
    let output = wavlm(&[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(EmbeddingStore::open(&audio).unwrap().len(), 2);
    // A label corrected in the label file after extraction: the store's label is stale.
    let labels = iemocap.join("Session1/dialog/EmoEvaluation/Ses01F_impro01.txt");
    let text_before = fs::read_to_string(&labels).unwrap();
    let corrected = text_before.replace("\tang\t", "\tneu\t");
    assert_ne!(corrected, text_before);
    fs::write(&labels, corrected).unwrap();
    let output = wavlm(&[]);
    let message = text(&output);
    assert!(!output.status.success(), "{message}");
    assert!(
        message.contains("the data (the --data split's files or records differ"),
        "{message}"
    );
}

/// The LoRA baselines read the recordings behind a store's ids (`<turn>#<k>`, chunk k): left
/// out, `--chunk-seconds` is the store's (recorded in its manifest), and another value is
/// refused before anything is written (it read other audio for each id, or none).
#[test]
fn lora_on_audio_takes_the_chunk_length_of_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let iemocap = tmp.path().join("IEMOCAP_full_release");
    write_two_sessions(&iemocap, 2);
    let store = tmp.path().join("store");
    let output = extract_with(
        ("wavlm", "iemocap"),
        &iemocap,
        &store,
        &["--chunk-seconds", "0.25"],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let manifest = fs::read_to_string(store.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"chunk_samples\": 4000"), "{manifest}");
    let weights = encoder_fixture("wavlm");
    let replicate = |rep: &Path, extra: &[&str]| {
        let mut args = vec![
            "replicate",
            "--task",
            "iemocap",
            "--embeddings",
            store.to_str().unwrap(),
            "--methods",
            "lora-r2",
            "--epochs",
            "1",
            "--encoder",
            "wavlm",
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            iemocap.to_str().unwrap(),
            "--out",
            rep.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        classify(&args)
    };
    let refused = tmp.path().join("refused");
    let output = replicate(&refused, &["--chunk-seconds", "0.5"]);
    let mut refusals = Refusals::default();
    refusals.check(
        &output,
        "--chunk-seconds: 0.5 s, but the store's items are 0.25 s chunks",
        &refused.join("replicate.json"),
    );
    // A chunk length edited into the manifest is bounded like --chunk-seconds (10⁷ samples
    // aborted on a 2 TB allocation).
    let manifest_path = store.join("manifest.json");
    let mut edited: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest_path).unwrap()).unwrap();
    edited["chunk_samples"] = 10_000_000.into();
    fs::write(&manifest_path, edited.to_string()).unwrap();
    let output = replicate(&refused, &[]);
    refusals.check(
        &output,
        "manifest.json: chunk_samples 10000000 is not a chunk length this tool writes (1 to \
         960000)",
        &refused.join("replicate.json"),
    );
    refusals.assert_all();
    fs::write(&manifest_path, manifest).unwrap();
    let rep = tmp.path().join("rep");
    let output = replicate(&rep, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let record: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(rep.join("replicate.json")).unwrap()).unwrap();
    assert_eq!(record["finetune"]["chunk_samples"], 4000, "{record}");
}

/// Configuration values the port cannot run (0 layers or heads, a non-positive epsilon, a RoPE
/// base of 0) are refused naming the field and `config.json`, before a store is started: BEiT
/// with 0 layers panicked in the store writer, and the epsilons and θ failed at the first item
/// as a "non-finite value".
#[test]
fn unusable_config_values_are_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    write_cifar(&cifar, 2, 1);
    let iemocap = tmp.path().join("IEMOCAP_full_release");
    write_iemocap(
        &iemocap,
        &[(
            1,
            "Ses01F_impro01",
            "Ses01F_impro01_F000",
            "neu",
            16_000,
            6_000,
        )],
    );
    let ag_news = tmp.path().join("ag");
    write_ag_news(&ag_news);
    let cases = [
        ("beit", "num_hidden_layers", serde_json::json!(0), &cifar),
        ("beit", "num_attention_heads", serde_json::json!(0), &cifar),
        ("beit", "layer_norm_eps", serde_json::json!(-1.0), &cifar),
        ("wavlm", "layer_norm_eps", serde_json::json!(0.0), &iemocap),
        // Divided by in the chunk-length check, which ran before the configuration's.
        (
            "wavlm",
            "conv_stride",
            serde_json::json!([5, 2, 0]),
            &iemocap,
        ),
        ("llama", "rope_theta", serde_json::json!(0.0), &ag_news),
        ("llama", "rms_norm_eps", serde_json::json!(-1e-6), &ag_news),
    ];
    for (encoder, field, value, data) in cases {
        let weights = tmp.path().join(format!("{encoder}-{field}"));
        fs::create_dir_all(&weights).unwrap();
        for entry in fs::read_dir(encoder_fixture(encoder)).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), weights.join(entry.file_name())).unwrap();
        }
        let config_path = weights.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
        config[field] = value;
        fs::write(&config_path, config.to_string()).unwrap();
        let out = tmp.path().join(format!("store-{encoder}-{field}"));
        let task = match encoder {
            "beit" => "cifar100",
            "wavlm" => "iemocap",
            _ => "agnews",
        };
        let output = extract_from(&weights, (encoder, task), data, &out, &[], &[]);
        let message = text(&output);
        assert!(!output.status.success(), "{encoder} {field}: {message}");
        assert!(
            !message.contains("panicked"),
            "{encoder} {field}: {message}"
        );
        assert!(
            message.contains("config.json: unsupported configuration") && message.contains(field),
            "{encoder} {field}: {message}"
        );
        assert!(
            !out.join("train/manifest.json").exists() && !out.join("manifest.json").exists(),
            "{encoder} {field}: a store was started"
        );
    }
}

/// Every stored value of `a` and `b` (the same items in the same order) within `tolerance`
/// relative to the larger magnitude (or 1).
fn assert_same_store(a: &Path, b: &Path, tolerance: f32, what: &str) {
    let (a, b) = (
        EmbeddingStore::open(a).unwrap(),
        EmbeddingStore::open(b).unwrap(),
    );
    assert_eq!(a.ids(), b.ids(), "{what}: ids");
    let all: Vec<usize> = (0..a.len()).collect();
    let (a, b) = (a.gather(&all), b.gather(&all));
    assert_eq!(a.len(), b.len(), "{what}: sizes");
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1.0))
        .fold(0.0f32, f32::max);
    assert!(worst <= tolerance, "{what}: off by {worst:e}");
}

/// `DAAM_KERNELS=composed` turns the CPU kernels off, so the extraction runs burn's ops as a
/// CUDA build does (WavLM's 1-D convolutions as matrix products with `DAAM_CONV=gemm`, the
/// default of a build without autotune, and with `implicit`, or burn's `conv1d`): every
/// encoder's store equals the kernels' store (measured: within 4.2e-7).
#[test]
fn the_cuda_path_on_the_cpu_extracts_what_the_kernels_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    write_cifar(&cifar, 3, 1);
    let iemocap = tmp.path().join("IEMOCAP_full_release");
    write_iemocap(
        &iemocap,
        &[
            (
                1,
                "Ses01F_impro01",
                "Ses01F_impro01_F000",
                "neu",
                16_000,
                6_000,
            ),
            (
                2,
                "Ses02M_impro01",
                "Ses02M_impro01_M000",
                "ang",
                16_000,
                3_000,
            ),
        ],
    );
    let ag_news = tmp.path().join("ag_news_csv");
    write_ag_news(&ag_news);
    let cases = [
        ("beit", "cifar100", &cifar, "train"),
        ("wavlm", "iemocap", &iemocap, ""),
        ("llama", "agnews", &ag_news, "train"),
    ];
    // `(name, environment, --device)`.
    type Route<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let mut paths: Vec<Route> = vec![
        ("kernels", &[], "cpu"),
        (
            "composed, gemm",
            &[("DAAM_KERNELS", "composed"), ("DAAM_CONV", "gemm")],
            "cpu",
        ),
        (
            "composed, backend",
            &[("DAAM_KERNELS", "composed"), ("DAAM_CONV", "backend")],
            "cpu",
        ),
        (
            "composed, implicit",
            &[("DAAM_KERNELS", "composed"), ("DAAM_CONV", "implicit")],
            "cpu",
        ),
    ];
    // With `--features wgpu` (and a wgpu adapter: lavapipe on a machine without a GPU), burn's
    // wgpu backend too: the cubecl kernels and fusion a CUDA build runs.
    if cfg!(feature = "wgpu") {
        paths.extend([
            ("wgpu, gemm", &[("DAAM_CONV", "gemm")][..], "wgpu"),
            ("wgpu, backend", &[("DAAM_CONV", "backend")][..], "wgpu"),
            ("wgpu, implicit", &[("DAAM_CONV", "implicit")][..], "wgpu"),
        ]);
    }
    for (encoder, task, data, split) in cases {
        let stores: Vec<PathBuf> = paths
            .iter()
            .enumerate()
            .map(|(i, (_, env, device))| {
                let out = tmp.path().join(format!("{encoder}-{i}"));
                let mut args = vec!["--batch-size", "2", "--dtype", "f32", "--device", device];
                if encoder == "wavlm" {
                    args.extend(["--chunk-seconds", "0.25"]);
                }
                if !split.is_empty() {
                    args.extend(["--split", split]);
                }
                let output = extract_with((encoder, task), data, &out, &args, env);
                assert!(output.status.success(), "{encoder}: {}", text(&output));
                out.join(split)
            })
            .collect();
        for ((name, _, _), store) in paths.iter().zip(&stores).skip(1) {
            assert_same_store(&stores[0], store, 1e-5, &format!("{encoder}, {name}"));
        }
    }
}

/// Sizes, chunk lengths, token limits, an encoder that does not read the task's records and a
/// split without records are refused, naming the option, before a store is started.
#[test]
fn extract_options_are_checked_before_a_store_is_started() {
    let mut refusals = Refusals::default();
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    write_cifar(&cifar, 2, 1);
    let iemocap = tmp.path().join("IEMOCAP_full_release");
    let turn = (
        1,
        "Ses01F_impro01",
        "Ses01F_impro01_F000",
        "neu",
        16_000,
        6_000,
    );
    write_iemocap(&iemocap, &[turn]);
    let news = tmp.path().join("ag_news_csv");
    write_ag_news(&news);
    let empty_news = tmp.path().join("empty_news");
    write_ag_news(&empty_news);
    fs::write(empty_news.join("train.csv"), "").unwrap();
    /// `(encoder, task)`, data folder, extra arguments, expected message.
    type Case<'a> = ((&'a str, &'a str), &'a Path, &'a [&'a str], &'a str);
    let cases: [Case; 16] = [
        (
            ("beit", "cifar100"),
            &cifar,
            &["--shard-size", "0"],
            "invalid value '0' for '--shard-size <SHARD_SIZE>': must be at least 1",
        ),
        (
            ("beit", "cifar100"),
            &cifar,
            &["--batch-size", "0"],
            "invalid value '0' for '--batch-size <BATCH_SIZE>': must be at least 1",
        ),
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--chunk-seconds", "inf"],
            "--chunk-seconds: must be a positive finite number of seconds, got inf",
        ),
        // Not a 330-digit decimal.
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--chunk-seconds", "5e-324"],
            "--chunk-seconds: 5e-324 s is less than one sample at 16000 Hz",
        ),
        // Options the encoder does not read were ignored silently.
        (
            ("llama", "agnews"),
            &news,
            &["--chunk-seconds", "3"],
            "--chunk-seconds applies to --encoder wavlm only; --encoder llama does not read it",
        ),
        (
            ("beit", "cifar100"),
            &cifar,
            &["--mask-padding"],
            "--mask-padding applies to --encoder wavlm only; --encoder beit does not read it",
        ),
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--max-tokens", "10"],
            "--max-tokens applies to --encoder llama only; --encoder wavlm does not read it",
        ),
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--chunk-seconds", "0.00001"],
            "--chunk-seconds: 0.00001 s is less than one sample at 16000 Hz",
        ),
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--chunk-seconds", "61"],
            "--chunk-seconds: 61 s is longer than the 60 s allowed",
        ),
        // The tiny WavLM makes 800 frames a second (strides 5·2·2): 20 s is 15,999 frames,
        // whose attention scores take 3.8 GiB per clip (60 s took 23.5 GB before the process
        // was killed).
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--chunk-seconds", "20"],
            "--chunk-seconds: 20 s is 15999 frames for this WavLM",
        ),
        (
            ("wavlm", "iemocap"),
            &iemocap,
            &["--chunk-seconds", "0.002"],
            "--chunk-seconds: 0.002 s is shorter than the model's receptive field (40 samples",
        ),
        (
            ("wavlm", "agnews"),
            &news,
            &[],
            "--encoder wavlm reads audio; --task agnews is text: use --encoder llama",
        ),
        (
            ("llama", "cifar100"),
            &cifar,
            &[],
            "--encoder llama reads text; --task cifar100 is images: use --encoder beit",
        ),
        (
            ("llama", "agnews"),
            &empty_news,
            &[],
            "the train split of agnews has no records",
        ),
        (
            ("llama", "agnews"),
            &news,
            &["--max-tokens", "4096"],
            "--max-tokens: 4096 is more than the model's max_position_embeddings = 64",
        ),
        (
            ("beit", "cifar100"),
            &cifar,
            &["--limit", "0"],
            "invalid value '0' for '--limit <LIMIT>'",
        ),
    ];
    for (case, (pair, data, extra, expected)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("store-{case}"));
        let output = extract_with(pair, data, &out, extra, &[]);
        refusals.check(&output, expected, &out);
    }
    refusals.assert_all();
}

/// A text longer than the model's positions: by default `--max-tokens` is clamped to
/// `max_position_embeddings` (and the run says so); asked for explicitly above it, refused.
#[test]
fn llama_max_tokens_defaults_to_the_model_positions() {
    let mut refusals = Refusals::default();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ag_news_csv");
    write_ag_news(&data);
    let long = "word and another ".repeat(100);
    fs::write(
        data.join("train.csv"),
        format!("\"3\",\"a long one\",\"{long}\"\n\"1\",\"short\",\"text\"\n"),
    )
    .unwrap();
    let out = tmp.path().join("store");
    let llama = ("llama", "agnews");
    let output = extract_with(llama, &data, &out, &["--split", "train"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(
            "--max-tokens: 4096 by default, clamped to the model's max_position_embeddings = 64"
        ),
        "{}",
        text(&output)
    );
    assert_eq!(EmbeddingStore::open(&out.join("train")).unwrap().len(), 2);
    let refused = tmp.path().join("refused");
    let output = extract_with(llama, &data, &refused, &["--max-tokens", "65"], &[]);
    refusals.check(
        &output,
        "--max-tokens: 65 is more than the model's max_position_embeddings = 64",
        &refused,
    );
    refusals.assert_all();
}

/// The LoRA options are checked before `replicate` writes anything: α and LoRA+'s λ positive
/// and finite, ranks within the encoder's width, the encoder the one that reads the store's
/// records (named with the encoder the manifest records).
#[test]
fn lora_options_are_checked_before_replicate_writes_anything() {
    let mut refusals = Refusals::default();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    let store = tmp.path().join("store");
    write_cifar(&data, 4, 2);
    let output = extract_beit(&data, &store, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let replicate = |methods: &str, encoder: &str, rep: &Path, extra: &[&str]| {
        let weights = encoder_fixture(encoder);
        let mut args = vec![
            "replicate",
            "--task",
            "cifar100",
            "--embeddings",
            store.to_str().unwrap(),
            "--methods",
            methods,
            "--epochs",
            "1",
            "--runs",
            "1",
            "--encoder",
            encoder,
            "--weights",
            weights.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            rep.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        classify(&args)
    };
    for (case, (methods, encoder, extra, expected)) in [
        (
            "lora-r2",
            "beit",
            &["--lora-alpha", "NaN"][..],
            "--lora-alpha: must be a positive finite number, got NaN",
        ),
        (
            "lora-r2",
            "beit",
            &["--lora-alpha=-5"][..],
            "--lora-alpha: must be a positive finite number, got -5",
        ),
        (
            "loraplus-r2",
            "beit",
            &["--loraplus-ratio=-1"][..],
            "--loraplus-ratio: must be a positive finite number, got -1",
        ),
        (
            "lora-r100000",
            "beit",
            &[][..],
            "lora-r100000: rank 100000 is more than the encoder's width 32",
        ),
        (
            "lora-r2",
            "beit",
            &["--lora-targets", "query,query"][..],
            "LoRA target Query is listed twice",
        ),
        (
            "lora-r2",
            "wavlm",
            &[][..],
            "--encoder wavlm reads audio; the store",
        ),
        (
            "lora-r2",
            "beit",
            &["--chunk-seconds", "3"][..],
            "--chunk-seconds applies to --encoder wavlm only; --encoder beit does not read it",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let rep = tmp.path().join(format!("rep-{case}"));
        let output = replicate(methods, encoder, &rep, extra);
        refusals.check(&output, expected, &rep);
    }
    let rep = tmp.path().join("rep-encoder");
    let output = replicate("lora-r2", "wavlm", &rep, &[]);
    refusals.check(
        &output,
        "holds cifar100 images encoded by `beit` (manifest.json): use --encoder beit",
        &rep,
    );
    refusals.assert_all();
}
