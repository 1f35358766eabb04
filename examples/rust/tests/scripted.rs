//! The bindings end to end through the scripted backend (no model weights):
//! verdicts, every kind of error with its status and message, and threads.
use imgjudge::{CallOptions, CancelToken, Constitution, Judge, JudgeOptions, ModelOptions, Models, Status};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const RULES: &str = r#"schema_version = 1
name = "rust-test"
version = "1"

[[rules]]
id = "test.fire"
category = "danger"
text = "No burning buildings."
objective_text = "A building is on fire."
chain = [
  { any_of = ["A building is visible in the image."] },
  { any_of = ["Flames are visible on the building."] },
]
"#;

/// rocket.jpg is scripted as a burning building (prior 0.2, scores > 0.84:
/// accepted); every other image scores 0.5 (uncertain, then "No" by reasoning).
/// Written once per test process (tests run in parallel threads).
fn script() -> &'static PathBuf {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(write_script)
}

fn write_script() -> PathBuf {
    let images = repo().join("examples/images");
    let text = format!(
        r#"[defaults]
prior = 0.2

[[images]]
file = "{}"
scores = {{ "A building is visible in the image." = 0.95, "Flames are visible on the building." = 0.97 }}
"#,
        images.join("rocket.jpg").display()
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("imgjudge_script_{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn judge() -> Judge {
    let rules = Constitution::from_toml(RULES, "rust-test.toml").unwrap();
    Judge::new(&rules, &JudgeOptions::scripted(script().to_str().unwrap())).unwrap()
}

#[test]
fn judges_files_bytes_and_pixels() {
    let judge = judge();
    let images = repo().join("examples/images");
    let call = CallOptions::default();

    let rocket = judge.judge_file(images.join("rocket.jpg"), &call).unwrap();
    assert!(rocket.is_unsafe());
    assert_eq!(rocket.violated_rules(), vec!["test.fire".to_string()]);
    let json = rocket.json().unwrap();
    assert!(json.contains(r#""schema":"imgjudge.verdict/2""#), "{json}");
    assert!(json.contains(r#""decision":"unsafe""#), "{json}");

    let cat = std::fs::read(images.join("chelsea.png")).unwrap();
    let verdict = judge.judge_bytes(&cat, &call).unwrap();
    assert!(!verdict.is_unsafe());
    assert!(verdict.violated_rules().is_empty());

    let pixels = vec![200u8; 4 * 2 * 3 + 8];
    let verdict = judge.judge_rgb(&pixels, 4, 2, 4 * 3 + 8, &call).unwrap();
    assert!(!verdict.is_unsafe());
}

#[test]
fn errors_carry_status_and_message() {
    let judge = judge();
    let call = CallOptions::default();

    let err = judge.judge_bytes(b"not an image", &call).err().unwrap();
    assert_eq!(err.status, Status::InvalidImage);
    assert!(!err.message.is_empty());

    let err = judge.judge_file("/nonexistent/imgjudge.png", &call).err().unwrap();
    assert_eq!(err.status, Status::Io);
    assert!(err.message.contains("/nonexistent/imgjudge.png"), "{}", err.message);

    let err = judge.judge_rgb(&[0u8; 5], 4, 2, 12, &call).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("too few"), "{}", err.message);

    let err = Constitution::from_toml("schema_version = 1\nname = = 1\n", "bad.toml").err().unwrap();
    assert_eq!(err.status, Status::InvalidConstitution);
    assert!(err.message.starts_with("bad.toml:2:"), "{}", err.message);
    assert_eq!(err.status.name(), "invalid_constitution");

    let rules = Constitution::from_toml(RULES, "rust-test.toml").unwrap();
    let options = JudgeOptions {
        models: ModelOptions { backend: Some("nope".into()), ..Default::default() },
        ..Default::default()
    };
    let err = Judge::new(&rules, &options).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("unknown backend"), "{}", err.message);

    let token = CancelToken::new().unwrap();
    token.cancel();
    assert!(token.is_cancelled());
    let cancelled = CallOptions { cancel: Some(&token), ..Default::default() };
    let err = judge.judge_file(repo().join("examples/images/rocket.jpg"), &cancelled).err().unwrap();
    assert_eq!(err.status, Status::Cancelled);
}

#[test]
fn constitutions_are_readable() {
    let rules = Constitution::from_toml(RULES, "rust-test.toml").unwrap();
    assert_eq!(rules.rule_ids().unwrap(), vec!["test.fire".to_string()]);
    assert!(rules.hash().unwrap().starts_with("sha256:"));
    assert!(Constitution::builtin().unwrap().rule_ids().unwrap().len() >= 5);
    assert!(!imgjudge::version().is_empty());
}

#[test]
fn one_judge_serves_many_threads() {
    let judge = Arc::new(judge());
    let rocket = repo().join("examples/images/rocket.jpg");
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let judge = Arc::clone(&judge);
            let rocket = rocket.clone();
            std::thread::spawn(move || {
                (0..3).all(|_| judge.judge_file(&rocket, &CallOptions::default()).unwrap().is_unsafe())
            })
        })
        .collect();
    for worker in workers {
        assert!(worker.join().unwrap());
    }
}

#[test]
fn layout_2_options_reach_the_library() {
    // A rule naming a central object: strategy 2 runs with the scripted
    // locator unless switched off, and the verdict says when it is.
    let rules = RULES.replace(
        r#"{ any_of = ["Flames are visible on the building."] }"#,
        r#"{ any_of = ["Flames are visible on the building."], objects = ["flames"] }"#,
    );
    let rules = Constitution::from_toml(&rules, "rust-objects.toml").unwrap();
    let image = repo().join("examples/images/rocket.jpg");
    let call = CallOptions::default();

    let mut options = JudgeOptions::scripted(script().to_str().unwrap());
    let on = Judge::new(&rules, &options).unwrap().judge_file(&image, &call).unwrap();
    assert!(!on.json().unwrap().contains("strategy 2 off"), "{}", on.json().unwrap());

    options.locator = false;
    options.reasoning_tokens = 64;
    let off = Judge::new(&rules, &options).unwrap().judge_file(&image, &call).unwrap();
    let json = off.json().unwrap();
    assert!(json.contains("strategy 2 off (ablation)"), "{json}");

    options.reasoning_tokens = u32::MAX;
    let error = Judge::new(&rules, &options).err().expect("a budget beyond int is refused");
    assert_eq!(error.status, Status::InvalidArgument);
    assert!(error.message.contains("reasoning_tokens"), "{}", error.message);

    options.reasoning_tokens = 0;
    options.models.locator_model_dir = Some("/nonexistent/owlv2".to_string());
    let error = Judge::new(&rules, &options).err().expect("the scripted backend takes no locator folder");
    assert_eq!(error.status, Status::InvalidArgument);
    assert!(error.message.contains("locator_model_dir"), "{}", error.message);
}

#[test]
fn two_constitutions_share_one_models_handle() {
    let models = Models::load(&ModelOptions::scripted(script().to_str().unwrap())).unwrap();
    let fire = Constitution::from_toml(RULES, "rust-test.toml").unwrap();
    let other = Constitution::from_toml(&RULES.replace("test.fire", "test.other"), "other.toml").unwrap();
    let first = Judge::with_models(&fire, &models, &JudgeOptions::default()).unwrap();
    let second = Judge::with_models(&other, &models, &JudgeOptions::default()).unwrap();
    // The judges hold their own references: dropping the handle first is fine.
    drop(models);
    let rocket = repo().join("examples/images/rocket.jpg");
    let call = CallOptions::default();
    assert_eq!(first.judge_file(&rocket, &call).unwrap().violated_rules(), ["test.fire"]);
    assert_eq!(second.judge_file(&rocket, &call).unwrap().violated_rules(), ["test.other"]);
}

#[test]
fn with_models_refuses_model_fields_and_bad_folders() {
    let models = Models::load(&ModelOptions::scripted(script().to_str().unwrap())).unwrap();
    let rules = Constitution::from_toml(RULES, "rust-test.toml").unwrap();
    let options = JudgeOptions { models: ModelOptions::torch("/models/other"), ..Default::default() };
    let error = Judge::with_models(&rules, &models, &options).err().expect("a model field is refused");
    assert_eq!(error.status, Status::InvalidArgument);
    assert!(error.message.contains("model_dir"), "{}", error.message);

    let error = Models::load(&ModelOptions::torch("/nonexistent/imgjudge-model")).err().unwrap();
    assert_eq!(error.status, Status::InvalidModel);
    assert!(error.message.contains("/nonexistent/imgjudge-model"), "{}", error.message);
}

#[test]
fn an_uncertain_rule_under_review_policy_is_reported() {
    // The coffee cup scores 0.5 on both items: uncertain; with reasoning off it stays
    // uncertain and the constitution's default policy (review) applies.
    let models = Models::load(&ModelOptions::scripted(script().to_str().unwrap())).unwrap();
    let rules = Constitution::from_toml(RULES, "rust-test.toml").unwrap();
    let options = JudgeOptions { cascade: false, ..Default::default() };
    let judge = Judge::with_models(&rules, &models, &options).unwrap();
    let verdict = judge.judge_file(repo().join("examples/images/coffee.png"), &CallOptions::default()).unwrap();
    assert!(!verdict.is_unsafe());
    assert!(verdict.needs_review(), "{}", verdict.json().unwrap());
    assert_eq!(verdict.review_rules(), ["test.fire"]);
    assert!(verdict.violated_rules().is_empty());
}
