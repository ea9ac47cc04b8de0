//! Heads train on generated stores: every head's loss falls, a DAAM head finds a class signal
//! that lives in chosen layers' means and variances, folds and seeds keep items apart, and the
//! report is recomputed from the per-run CSVs.

use std::collections::HashSet;

use burn::backend::{Autodiff, Flex};
use classify::head::{DatHeadConfig, HeadKind};
use classify::protocol::{plan_runs, Stores};
use classify::replicate::{replicate, ReplicateOptions};
use classify::synthetic::SyntheticSpec;
use classify::train::{
    read_metrics, train_run, LossKind, Precision, RunData, RunObserver, Silent, Task, TrainSettings,
};
use datasets::{EmbeddingStore, EmbeddingStoreWriter, StoreDtype, StoreInfo};

type B = Autodiff<Flex>;

fn settings(epochs: usize, lr: f64) -> TrainSettings {
    TrainSettings {
        epochs,
        batch_size: 16,
        learning_rate: lr,
        weight_decay: 0.01,
        loss: LossKind::CrossEntropy,
        seed: 3,
        plateau_patience: 10,
        plateau_factor: 0.1,
        dev_fraction: 0.1,
        precision: Precision::F32,
    }
}

/// Items `0..train_len` of `store` to train on, the rest to validate on; no dev split.
fn holdout(store: &EmbeddingStore, train_len: usize) -> RunData<'_> {
    RunData {
        train: store,
        train_indices: (0..train_len).collect(),
        dev_indices: vec![],
        val: store,
        val_indices: (train_len..store.len()).collect(),
        layers: None,
    }
}

#[test]
fn every_head_trains_and_its_loss_falls() {
    let dir = tempfile::tempdir().unwrap();
    SyntheticSpec::small(160, 1)
        .write(dir.path(), "all")
        .unwrap();
    let store = EmbeddingStore::open(dir.path()).unwrap();
    for kind in HeadKind::ALL {
        let head = DatHeadConfig::new(kind, 8, 16, 4).with_conv_channels(8);
        let data = holdout(&store, 128);
        let run = tempfile::tempdir().unwrap();
        let records = train_run::<B>(
            &head,
            &settings(6, 1e-3),
            &data,
            run.path(),
            &Default::default(),
            &mut Silent,
        )
        .unwrap();
        let (first, last) = (records[0].train_loss, records[5].train_loss);
        assert!(
            last < 0.9 * first,
            "{}: training loss {first:.4} -> {last:.4} did not fall",
            kind.name()
        );
        assert!(run.path().join("model.bin").exists(), "{}", kind.name());
        assert!(
            !run.path().join("model-partial.bin").exists(),
            "a partial save is left"
        );
        let read = read_metrics(&run.path().join("metrics.csv")).unwrap();
        let key = |r: &classify::train::EpochRecord| (r.epoch, r.train_loss, r.val_accuracy);
        assert_eq!(
            read.iter().map(key).collect::<Vec<_>>(),
            records.iter().map(key).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_daam_head_learns_a_signal_in_layer_statistics_in_every_precision() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        count: 400,
        strength: 1.0,
        ..SyntheticSpec::small(400, 7)
    };
    spec.write(dir.path(), "all").unwrap();
    let store = EmbeddingStore::open(dir.path()).unwrap();
    let head = DatHeadConfig::new(HeadKind::DaamV1, 8, 16, 4).with_conv_channels(16);
    let data = holdout(&store, 320);
    let (mut best, mut first_losses) = (Vec::new(), Vec::new());
    for precision in Precision::ALL {
        let run = tempfile::tempdir().unwrap();
        let settings = TrainSettings {
            precision,
            ..settings(15, 2e-3)
        };
        let records = train_run::<B>(
            &head,
            &settings,
            &data,
            run.path(),
            &Default::default(),
            &mut Silent,
        )
        .unwrap();
        let (first, last) = (records[0].train_loss, records[14].train_loss);
        assert!(
            last < 0.8 * first,
            "{}: training loss {first:.4} -> {last:.4} did not fall",
            precision.name()
        );
        best.push(records.iter().map(|r| r.val_accuracy).fold(0.0, f64::max));
        first_losses.push(first);
    }
    // Chance is 25%; the signal is a 1σ shift per class step in 4 features of 2 of 8 layers.
    // Measured: 0.675 at seed 7 in every precision; more than twice chance shows the signal
    // was found. The same seed and data: the half-precision runs follow the f32 run up to
    // rounding, which they do show (their losses are not f32's: the half path ran).
    for (precision, loss) in Precision::ALL.iter().zip(&first_losses).skip(1) {
        assert_ne!(*loss, first_losses[0], "{}: the f32 loss", precision.name());
    }
    for (precision, acc) in Precision::ALL.iter().zip(&best) {
        assert!(
            *acc > 0.55 && (acc - best[0]).abs() <= 0.1,
            "{}: best validation accuracy {acc:.3} (f32: {:.3})",
            precision.name(),
            best[0]
        );
    }
}

#[test]
fn f16_overflows_skip_steps_then_stop_with_a_named_error_where_f32_trains() {
    // Embeddings of ~1e6: the f16 convolutions overflow (f16's largest is 65,504).
    let dir = tempfile::tempdir().unwrap();
    let info = StoreInfo {
        encoder: "synthetic".into(),
        dataset: "synthetic".into(),
        split: "all".into(),
        num_layers: 8,
        d_model: 16,
        dtype: StoreDtype::F32,
        pooling: "none".into(),
        class_names: vec!["a".into(), "b".into()],
        chunk_samples: None,
        max_tokens: None,
        weights_digest: None,
        source_digest: None,
    };
    let mut writer = EmbeddingStoreWriter::create(dir.path(), info, 64).unwrap();
    for i in 0..32usize {
        let features: Vec<f32> = (0..8 * 16)
            .map(|j| 1e6 * (1.0 + ((i * 7 + j * 3) % 5) as f32))
            .collect();
        writer
            .push(&format!("item-{i}"), (i % 2) as u32, 0, &features)
            .unwrap();
    }
    writer.finish().unwrap();
    let store = EmbeddingStore::open(dir.path()).unwrap();
    let head = DatHeadConfig::new(HeadKind::Mha, 8, 16, 2).with_conv_channels(8);
    let data = holdout(&store, 24);
    struct Messages(Vec<String>);
    impl RunObserver for Messages {
        fn on_message(&mut self, message: &str) {
            self.0.push(message.to_string());
        }
    }
    let run = |precision, epochs| {
        let out = tempfile::tempdir().unwrap();
        let settings = TrainSettings {
            precision,
            ..settings(epochs, 1e-3)
        };
        let mut messages = Messages(Vec::new());
        let result = train_run::<B>(
            &head,
            &settings,
            &data,
            out.path(),
            &Default::default(),
            &mut messages,
        );
        (result, messages.0)
    };
    let (f32_result, _) = run(Precision::F32, 12);
    assert_eq!(
        f32_result.expect("f32 trains on large embeddings").len(),
        12
    );
    // Every f16 step overflows: each is skipped and halves the scale (2¹⁶ → 1 over 16 steps,
    // two per epoch, reported once per epoch); the 17th takes it below 1 and stops the run.
    let (f16_result, messages) = run(Precision::F16, 12);
    let error = f16_result.expect_err("f16 overflows");
    assert!(
        matches!(
            error,
            classify::Error::LossScaleCollapsed {
                epoch: 9,
                step: 1,
                overflows: 17,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("train with --precision bf16 or f32"),
        "{error}"
    );
    assert_eq!(messages.len(), 8, "{messages:?}");
    assert!(
        messages[7]
            .contains("epoch 8: 2 f16 step(s) skipped (gradients overflowed), loss scale now 1"),
        "{messages:?}"
    );
}

#[test]
fn folds_and_seeds_keep_items_apart() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        num_groups: 5,
        ..SyntheticSpec::small(100, 2)
    };
    spec.write(&dir.path().join("all"), "all").unwrap();
    let s = settings(1, 1e-3);
    let stores = Stores::open(&dir.path().join("all"), Task::Iemocap.protocol()).unwrap();
    let plans = plan_runs(&stores, Task::Iemocap.protocol(), &s, None);
    assert_eq!(plans.len(), 5, "one fold per session");
    let groups = stores.train.groups();
    let mut validated = HashSet::new();
    for plan in &plans {
        let val_groups: HashSet<u32> = plan.val.iter().map(|&i| groups[i]).collect();
        assert_eq!(
            val_groups.len(),
            1,
            "{}: validation is one session",
            plan.label
        );
        let held = *val_groups.iter().next().unwrap();
        for &i in plan.train.iter().chain(&plan.dev) {
            assert_ne!(
                groups[i], held,
                "{}: item {i} of the held-out session",
                plan.label
            );
        }
        let train: HashSet<_> = plan.train.iter().collect();
        assert!(
            plan.dev.iter().all(|i| !train.contains(i)),
            "dev overlaps train"
        );
        assert_eq!(plan.train.len() + plan.dev.len() + plan.val.len(), 100);
        validated.extend(plan.val.iter().copied());
    }
    assert_eq!(
        validated.len(),
        100,
        "every item is validated exactly once over the folds"
    );

    spec.write(&dir.path().join("split/train"), "train")
        .unwrap();
    SyntheticSpec {
        seed: 9,
        ..SyntheticSpec::small(20, 9)
    }
    .write(&dir.path().join("split/test"), "test")
    .unwrap();
    let stores = Stores::open(&dir.path().join("split"), Task::Cifar100.protocol()).unwrap();
    let plans = plan_runs(&stores, Task::Cifar100.protocol(), &s, None);
    assert_eq!(plans.len(), 5);
    assert!(plans
        .iter()
        .all(|p| p.val.len() == 20 && p.train.len() + p.dev.len() == 100));
    assert_ne!(
        plans[0].dev, plans[1].dev,
        "each seed carves its own dev split"
    );
}

/// `--seed 18446744073709551615`: the runs after the first wrap to seed 0, 1, ... on purpose
/// (`seed + k` panicked in debug builds; release builds wrap either way).
#[test]
fn run_seeds_wrap_past_the_largest_seed() {
    let dir = tempfile::tempdir().unwrap();
    SyntheticSpec::small(16, 1)
        .write(&dir.path().join("all"), "all")
        .unwrap();
    let mut s = settings(1, 1e-3);
    s.seed = u64::MAX;
    let stores = Stores::open(&dir.path().join("all"), Task::Iemocap.protocol()).unwrap();
    let plans = plan_runs(&stores, Task::Iemocap.protocol(), &s, None);
    let seeds: Vec<u64> = plans.iter().map(|p| p.seed).collect();
    assert_eq!(seeds, [u64::MAX, 0, 1, 2]);
}

#[test]
fn mismatched_stores_are_named() {
    let dir = tempfile::tempdir().unwrap();
    SyntheticSpec::small(20, 1)
        .write(&dir.path().join("train"), "train")
        .unwrap();
    SyntheticSpec {
        d_model: 12,
        ..SyntheticSpec::small(20, 1)
    }
    .write(&dir.path().join("test"), "test")
    .unwrap();
    let err = Stores::open(dir.path(), Task::Agnews.protocol())
        .err()
        .expect("a shape mismatch");
    let text = err.to_string();
    assert!(
        text.contains("test") && text.contains("does not match"),
        "{text}"
    );

    let one_group = tempfile::tempdir().unwrap();
    SyntheticSpec {
        num_groups: 1,
        ..SyntheticSpec::small(20, 1)
    }
    .write(one_group.path(), "all")
    .unwrap();
    let text = Stores::open(one_group.path(), Task::Iemocap.protocol())
        .err()
        .expect("one group")
        .to_string();
    assert!(text.contains("at least 2 groups"), "{text}");
}

#[test]
fn report_numbers_are_recomputed_from_the_run_csvs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        num_groups: 3,
        ..SyntheticSpec::small(90, 4)
    };
    spec.write(&dir.path().join("store"), "all").unwrap();
    let out = dir.path().join("out");
    let options = ReplicateOptions {
        task: Task::Iemocap,
        embeddings: dir.path().join("store"),
        methods: vec![HeadKind::DaamV2, HeadKind::Mixture],
        out: out.clone(),
        settings: settings(3, 1e-3),
        runs: None,
        layers: None,
        lora_methods: Vec::new(),
        finetune: None,
    };
    let report = replicate::<B>(&options, &Default::default(), &mut Silent).unwrap();
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert_eq!(row.runs.len(), 3, "{}: one run per session", row.method);
        let mut best = Vec::new();
        for run in &row.runs {
            let csv = out
                .join("runs")
                .join(&row.method)
                .join(&run.label)
                .join("metrics.csv");
            let text = std::fs::read_to_string(csv).unwrap();
            let val: Vec<f64> = text
                .lines()
                .skip(1)
                .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
                .collect();
            let max = val.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(run.best_on_val.accuracy, max);
            best.push(max);
        }
        let mean = best.iter().sum::<f64>() / best.len() as f64;
        assert!((row.best_on_val.0 - mean).abs() < 1e-12);
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 2);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| daam-v2 |") && md.contains("| mixture |"),
        "{md}"
    );

    // Rerunning keeps finished runs: the metrics files are not rewritten.
    let csv = out.join("runs/daam-v2/fold-1/metrics.csv");
    let before = std::fs::metadata(&csv).unwrap().modified().unwrap();
    replicate::<B>(&options, &Default::default(), &mut Silent).unwrap();
    assert_eq!(std::fs::metadata(&csv).unwrap().modified().unwrap(), before);
}
