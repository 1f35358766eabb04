// The C++ API from an installed imgjudge (see run.sh): find_package(imgjudge)
// and imgjudge::imgjudge give the include path and the library, nothing else.
//
//   consumer_cpp SCRIPT IMAGE   ->  "IMAGE: safe" or "IMAGE: unsafe", exit 0; 2 on error
#include <imgjudge/imgjudge.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " SCRIPT IMAGE\n";
    return 2;
  }
  try {
    imgjudge::ModelConfig models;
    models.backend = "scripted";
    models.script_path = argv[1];
    const imgjudge::Judge judge(imgjudge::Constitution::builtin_default(),
                                imgjudge::load_models(models));
    const imgjudge::Verdict verdict = judge.judge_file(argv[2]);
    std::cout << argv[2] << ": " << imgjudge::decision_name(verdict.decision) << " (imgjudge "
              << imgjudge::version() << ")\n";
    return 0;
  } catch (const imgjudge::Error& e) {
    // Catching imgjudge::Error thrown inside libimgjudge needs its type info
    // exported (capi/imgjudge.map); run.sh exercises this path too.
    std::cerr << "consumer_cpp: error [" << imgjudge::error_code_name(e.code()) << "]: " << e.what()
              << "\n";
    return 2;
  }
}
