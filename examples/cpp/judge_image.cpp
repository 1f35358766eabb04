// Judge image files from C++ with the imgjudge C++ API (<imgjudge/imgjudge.hpp>).
//
//   judge_image (--model DIR | --script FILE) [--constitution FILE] [--json] IMAGE...
//
// Same options and exit status as examples/c/judge_image.c: 0 all safe,
// 1 some image unsafe, 2 an error. Every failure is an imgjudge::Error with a
// code and a message that says what was wrong and where.
#include <imgjudge/imgjudge.hpp>

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  imgjudge::ModelConfig models;
  std::string constitution_path;
  bool as_json = false;
  std::vector<std::string> images;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--model" && i + 1 < argc) {
      models.model_dir = argv[++i];
    } else if (arg == "--script" && i + 1 < argc) {
      models.backend = "scripted";
      models.script_path = argv[++i];
    } else if (arg == "--constitution" && i + 1 < argc) {
      constitution_path = argv[++i];
    } else if (arg == "--json") {
      as_json = true;
    } else {
      images.assign(argv + i, argv + argc);
      break;
    }
  }
  if (images.empty()) {
    std::cerr << "usage: " << argv[0]
              << " (--model DIR | --script FILE) [--constitution FILE] [--json] IMAGE...\n";
    return 2;
  }

  try {
    // Loads the models and does every image-independent step once. A Judge is
    // immutable: share it between threads freely.
    const imgjudge::Judge judge(constitution_path.empty()
                                    ? imgjudge::Constitution::builtin_default()
                                    : imgjudge::Constitution::from_file(constitution_path),
                                imgjudge::load_models(models));
    int exit_code = 0;
    for (const std::string& path : images) {
      try {
        const imgjudge::Verdict verdict = judge.judge_file(path);
        if (as_json) {
          std::cout << verdict.to_json() << "\n";
        } else {
          std::cout << path << ": " << (verdict.unsafe() ? "UNSAFE" : "safe");
          for (std::size_t i = 0; i < verdict.violated_rules.size(); ++i) {
            std::cout << (i == 0 ? " (violates " : ", ") << verdict.violated_rules[i];
          }
          std::cout << (verdict.violated_rules.empty() ? "" : ")") << "\n";
        }
        if (verdict.unsafe() && exit_code == 0) exit_code = 1;
      } catch (const imgjudge::Error& e) {
        // A bad image fails alone; the judge stays usable.
        std::cerr << path << ": error [" << imgjudge::error_code_name(e.code()) << "]: " << e.what()
                  << "\n";
        exit_code = 2;
      }
    }
    return exit_code;
  } catch (const imgjudge::Error& e) {
    std::cerr << "judge_image: error [" << imgjudge::error_code_name(e.code()) << "]: " << e.what()
              << "\n";
    return 2;
  }
}
