//! cargo run --example judge_image -- [--constitution FILE] (--model DIR | --script FILE) IMAGE...
//!
//! Judges each image against the constitution of FILE (default: the bundled one) and exits
//! 0 if every image is safe, 1 if some image is unsafe, 2 for a usage or setup error, 3 if
//! some image could not be judged (and none was unsafe), like `imgjudge judge`.
use imgjudge::{CallOptions, Constitution, Judge, JudgeOptions};

const USAGE: &str = "usage: judge_image [--constitution FILE] (--model DIR | --script FILE) IMAGE...";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut constitution_file = None;
    if args.first().map(String::as_str) == Some("--constitution") {
        if args.len() < 2 {
            usage();
        }
        constitution_file = Some(args.remove(1));
        args.remove(0);
    }
    let (options, images) = match args.as_slice() {
        [flag, dir, images @ ..] if flag == "--model" && !images.is_empty() => (JudgeOptions::torch(dir), images),
        [flag, file, images @ ..] if flag == "--script" && !images.is_empty() => (JudgeOptions::scripted(file), images),
        _ => usage(),
    };
    let constitution = match &constitution_file {
        Some(file) => Constitution::from_file(file),
        None => Constitution::builtin(),
    };
    let judge = match constitution.and_then(|rules| Judge::new(&rules, &options)) {
        Ok(judge) => judge,
        Err(error) => {
            eprintln!("judge_image: {error}");
            std::process::exit(2);
        }
    };
    let (mut any_unsafe, mut any_failed) = (false, false);
    for image in images {
        match judge.judge_file(image, &CallOptions::default()) {
            Ok(verdict) if verdict.is_unsafe() => {
                any_unsafe = true;
                println!("{image}: UNSAFE {:?}", verdict.violated_rules());
            }
            Ok(_) => println!("{image}: safe"),
            Err(error) => {
                any_failed = true;
                eprintln!("{image}: {error}");
            }
        }
    }
    std::process::exit(if any_unsafe { 1 } else if any_failed { 3 } else { 0 });
}
