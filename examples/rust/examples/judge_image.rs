//! cargo run --example judge_image -- (--model DIR | --script FILE) IMAGE...
use imgjudge::{CallOptions, Constitution, Judge, JudgeOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (options, images) = match args.as_slice() {
        [flag, dir, images @ ..] if flag == "--model" && !images.is_empty() => (JudgeOptions::torch(dir), images),
        [flag, file, images @ ..] if flag == "--script" && !images.is_empty() => (JudgeOptions::scripted(file), images),
        _ => {
            eprintln!("usage: judge_image (--model DIR | --script FILE) IMAGE...");
            std::process::exit(2);
        }
    };
    let judge = Judge::new(&Constitution::builtin()?, &options)?;
    for image in images {
        match judge.judge_file(image, &CallOptions::default()) {
            Ok(verdict) if verdict.is_unsafe() => println!("{image}: UNSAFE {:?}", verdict.violated_rules()),
            Ok(_) => println!("{image}: safe"),
            Err(error) => eprintln!("{image}: {error}"),
        }
    }
    Ok(())
}
