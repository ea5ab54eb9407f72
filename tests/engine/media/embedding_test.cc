#include "engine/media/embedding.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "golden_util.h"

namespace tblog {
namespace {

namespace fs = std::filesystem;

TensorView F32View(const std::vector<float>& data, const std::vector<int64_t>& shape) {
  return TensorView{DType::kFloat32, shape,
                    std::string_view(reinterpret_cast<const char*>(data.data()), data.size() * 4)};
}

// A fresh directory under the build tree, removed at the end of the test.
class EmbeddingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(TBLOG_BINARY_DIR) / "test_tmp" /
           ("embedding_test." + std::string(info->name()) + "." + std::to_string(getpid()));
    std::error_code error;
    fs::remove_all(dir_, error);
    fs::create_directories(dir_, error);
    ASSERT_FALSE(error) << dir_ << ": " << error.message();
  }
  void TearDown() override {
    std::error_code ignored;  // a leftover directory under the build tree is harmless
    fs::remove_all(dir_, ignored);
  }
  fs::path dir_;
};

EmbeddingLabels GoldenLabels() {
  EmbeddingLabels labels;
  for (int i = 0; i < 10; ++i) labels.cells.push_back("c" + std::to_string(i % 3));
  return labels;
}

TEST(PythonFloatReprTest, MatchesPythonRepr) {
  EXPECT_EQ(PythonFloatRepr(0.0), "0.0");
  EXPECT_EQ(PythonFloatRepr(-0.0), "-0.0");
  EXPECT_EQ(PythonFloatRepr(1.0), "1.0");
  EXPECT_EQ(PythonFloatRepr(-2.5), "-2.5");
  EXPECT_EQ(PythonFloatRepr(123456.0), "123456.0");
  EXPECT_EQ(PythonFloatRepr(0.0001), "0.0001");
  EXPECT_EQ(PythonFloatRepr(0.00001), "1e-05");
  EXPECT_EQ(PythonFloatRepr(1.5e-7), "1.5e-07");
  EXPECT_EQ(PythonFloatRepr(1e15), "1000000000000000.0");
  EXPECT_EQ(PythonFloatRepr(1e16), "1e+16");
  EXPECT_EQ(PythonFloatRepr(1.25e100), "1.25e+100");
  EXPECT_EQ(PythonFloatRepr(0.1), "0.1");
  EXPECT_EQ(PythonFloatRepr(static_cast<double>(0.1f)), "0.10000000149011612");
  EXPECT_EQ(PythonFloatRepr(std::nan("")), "nan");
  EXPECT_EQ(PythonFloatRepr(-INFINITY), "-inf");
}

TEST_F(EmbeddingTest, MatchesGoldenTorchEmbeddingByteForByte) {
  const std::vector<float> matrix = ReadGoldenArray<float>("embedding_10x4.f32");
  ASSERT_EQ(matrix.size(), 40u);
  const EmbeddingLabels labels = GoldenLabels();
  absl::StatusOr<ProjectorFiles> files =
      BuildProjectorFiles("emb", 0, F32View(matrix, {10, 4}), &labels);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_TRUE(WriteProjectorFiles(dir_, *files).ok());
  const std::string golden = std::string(TBLOG_GOLDEN_DIR) + "/torch_embedding/";
  for (const char* relative :
       {"00000/emb/tensors.tsv", "00000/emb/metadata.tsv", "projector_config.pbtxt"}) {
    EXPECT_EQ(ReadFileBytes((dir_ / relative).string()), ReadFileBytes(golden + relative))
        << relative;
  }
}

TEST_F(EmbeddingTest, RepeatedCallDoesNotDuplicateTheConfigBlock) {
  const std::vector<float> matrix = {1, 2, 3, 4};
  absl::StatusOr<ProjectorFiles> first = BuildProjectorFiles("a", 7, F32View(matrix, {2, 2}));
  absl::StatusOr<ProjectorFiles> second = BuildProjectorFiles("b/c", 123456, F32View(matrix, {4, 1}));
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(WriteProjectorFiles(dir_, *first).ok());
  ASSERT_TRUE(WriteProjectorFiles(dir_, *first).ok());
  ASSERT_TRUE(WriteProjectorFiles(dir_, *second).ok());
  EXPECT_EQ(ReadFileBytes((dir_ / "projector_config.pbtxt").string()),
            "embeddings {\n  tensor_name: \"a:00007\"\n  tensor_path: \"00007/a/tensors.tsv\"\n}\n"
            "embeddings {\n  tensor_name: \"b/c:123456\"\n"
            "  tensor_path: \"123456/b%2fc/tensors.tsv\"\n}\n");
  EXPECT_EQ(ReadFileBytes((dir_ / "00007/a/tensors.tsv").string()), "1.0\t2.0\n3.0\t4.0\n");
  EXPECT_TRUE(fs::exists(dir_ / "123456/b%2fc/tensors.tsv"));
  // No temporary files are left behind.
  for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST_F(EmbeddingTest, MultiColumnLabelsGetAHeaderRow) {
  const std::vector<float> matrix = {0.5f, 0.25f};
  EmbeddingLabels labels{{"name", "class"}, {"x", "1", "y", "2"}};
  absl::StatusOr<ProjectorFiles> files = BuildProjectorFiles("m", 1, F32View(matrix, {2, 1}), &labels);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_EQ(files->files.size(), 2u);
  EXPECT_EQ(files->files[0].first, "00001/m/metadata.tsv");
  EXPECT_EQ(files->files[0].second, "name\tclass\nx\t1\ny\t2\n");
  labels.cells.pop_back();
  EXPECT_FALSE(BuildProjectorFiles("m", 1, F32View(matrix, {2, 1}), &labels).ok());
  EmbeddingLabels with_tab{{}, {"a\tb", "c"}};
  EXPECT_FALSE(BuildProjectorFiles("m", 1, F32View(matrix, {2, 1}), &with_tab).ok());
}

TEST_F(EmbeddingTest, RejectsTagsAndInputsThatCouldEscapeOrCorrupt) {
  const std::vector<float> matrix = {1, 2};
  for (const std::string& tag : {std::string(""), std::string("."), std::string(".."),
                                std::string("a\nb"), std::string("a\0b", 3), std::string("\xFF")}) {
    EXPECT_EQ(BuildProjectorFiles(tag, 0, F32View(matrix, {1, 2})).status().code(),
              absl::StatusCode::kInvalidArgument)
        << tag;
  }
  // "../x" is one encoded path component ("..%2fx"), so it stays inside the run.
  absl::StatusOr<ProjectorFiles> dotted = BuildProjectorFiles("../x", 0, F32View(matrix, {1, 2}));
  ASSERT_TRUE(dotted.ok());
  EXPECT_EQ(dotted->files[0].first, "00000/..%2fx/tensors.tsv");
  EXPECT_FALSE(BuildProjectorFiles("t", -1, F32View(matrix, {1, 2})).ok());
  EXPECT_FALSE(BuildProjectorFiles("t", 0, F32View(matrix, {2})).ok());
  const std::vector<float> with_nan = {1, std::nanf("")};
  EXPECT_FALSE(BuildProjectorFiles("t", 0, F32View(with_nan, {1, 2})).ok());
  // A hand-made file list cannot write outside the run directory either.
  ProjectorFiles evil{{{"../outside.tsv", "x"}}, "embeddings {\n}\n"};
  EXPECT_FALSE(WriteProjectorFiles(dir_, evil).ok());
  EXPECT_FALSE(fs::exists(dir_.parent_path() / "outside.tsv"));
}

TEST_F(EmbeddingTest, WriteFailureNamesThePath) {
  const std::vector<float> matrix = {1, 2};
  absl::StatusOr<ProjectorFiles> files = BuildProjectorFiles("t", 0, F32View(matrix, {1, 2}));
  ASSERT_TRUE(files.ok());
  // A regular file where the step directory should be.
  std::FILE* blocker = std::fopen((dir_ / "00000").c_str(), "wb");
  ASSERT_NE(blocker, nullptr);
  std::fclose(blocker);
  const absl::Status status = WriteProjectorFiles(dir_, *files);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("00000"), std::string_view::npos) << status;
}

}  // namespace
}  // namespace tblog
