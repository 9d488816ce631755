#include "client/legal/corpus.h"

#include <sys/stat.h>

#include <fstream>
#include <set>

#include "gtest/gtest.h"

namespace wxp::legal {
namespace {

std::string TempDir(const std::string& name) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(CorpusTest, LicenceFamilies) {
  EXPECT_EQ(LicenceFamily("GPL-2"), "GPL");
  EXPECT_EQ(LicenceFamily("GPL"), "GPL");
  EXPECT_EQ(LicenceFamily("LGPL-2.1"), "LGPL");
  EXPECT_EQ(LicenceFamily("Apache-2.0"), "Apache");
  EXPECT_EQ(LicenceFamily("CC0-1.0"), "CC0");
  EXPECT_EQ(LicenceFamily("GFDL-1.3"), "GFDL");
  EXPECT_EQ(LicenceFamily("Artistic"), "Artistic");
  EXPECT_EQ(LicenceFamily("foo-bar"), "foo-bar");
}

TEST(CorpusTest, DebianLicencesSplitIntoFamilies) {
  absl::StatusOr<Corpus> c = Corpus::Load("");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<std::string> names = c->ShardNames();
  for (const char* family : {"Apache", "GPL", "LGPL", "MPL", "GFDL"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), family), names.end()) << family;
  }
  // GPL is a link to GPL-3 on Debian: identical texts count once.
  absl::StatusOr<std::vector<std::string>> gpl = c->ShardFiles("GPL");
  ASSERT_TRUE(gpl.ok());
  EXPECT_EQ(gpl->size(), 3u);
}

TEST(CorpusTest, SplitsAreDisjointDeterministicAndMixed) {
  absl::StatusOr<Corpus> c = Corpus::Load("");
  ASSERT_TRUE(c.ok()) << c.status();
  std::set<std::string> train_chunks;
  int64_t total = 0, covered = 0;
  for (const std::string& shard : c->ShardNames()) {
    total += *c->ShardBytes(shard);
    for (Split split : {Split::kGeneral, Split::kTrain}) {
      const Segments part = *c->GetForShard(split, shard);
      for (const std::string& seg : part) covered += seg.size();
    }
    const Segments train = *c->Get(Split::kTrain, shard);
    for (const std::string& seg : train) {
      for (size_t i = 0; i + kChunkBytes <= seg.size(); i += kChunkBytes) {
        train_chunks.insert(seg.substr(i, kChunkBytes));
      }
    }
  }
  // general + train are ~80% of the text (dev/test are also capped per shard).
  EXPECT_GT(covered, total * 7 / 10);
  EXPECT_LT(covered, total * 9 / 10);
  absl::StatusOr<Segments> dev = c->Get(Split::kDev), test = c->Get(Split::kTest);
  ASSERT_TRUE(dev.ok() && test.ok());
  EXPECT_EQ(*dev, *c->Get(Split::kDev));  // deterministic
  EXPECT_NE(*dev, *test);
  for (const std::string& seg : *dev) {
    for (size_t i = 0; i + kChunkBytes <= seg.size(); i += kChunkBytes) {
      EXPECT_FALSE(train_chunks.count(seg.substr(i, kChunkBytes)));
    }
  }
  // The dev mix draws on every large family.
  for (const char* family : {"Apache", "GPL", "LGPL", "MPL", "GFDL"}) {
    EXPECT_FALSE(c->GetForShard(Split::kDev, family)->empty()) << family;
  }
}

TEST(CorpusTest, Errors) {
  absl::StatusOr<Corpus> missing = Corpus::Load("/nonexistent/wxp-corpus");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  const std::string empty = TempDir("empty");
  absl::StatusOr<Corpus> e = Corpus::Load(empty);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("no non-empty text file"), std::string::npos);

  absl::StatusOr<Corpus> c = Corpus::Load("");
  ASSERT_TRUE(c.ok());
  absl::StatusOr<Segments> unknown = c->Get(Split::kTrain, "NoSuchLicence");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("GPL"), std::string::npos);  // lists the known
  EXPECT_FALSE(ParseSplit("validation").ok());
  EXPECT_EQ(*ParseSplit(""), Split::kDev);
}

TEST(CorpusTest, SubdirectoriesAreFirms) {
  const std::string dir = TempDir("firms");
  mkdir((dir + "/acme").c_str(), 0755);
  mkdir((dir + "/globex").c_str(), 0755);
  mkdir((dir + "/initech").c_str(), 0755);
  WriteText(dir + "/README", "not a firm");
  WriteText(dir + "/acme/a.txt", std::string(5000, 'a'));
  WriteText(dir + "/globex/b.txt", std::string(5000, 'b'));
  absl::StatusOr<Corpus> bad = Corpus::Load(dir);  // initech holds nothing
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  WriteText(dir + "/initech/c.txt", std::string(5000, 'c'));
  absl::StatusOr<Corpus> c = Corpus::Load(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ShardNames(), (std::vector<std::string>{"acme", "globex", "initech"}));
  const Segments globex = *c->Get(Split::kTrain, "globex");
  for (const std::string& seg : globex) {
    EXPECT_EQ(seg.find_first_not_of('b'), std::string::npos);
  }
}

TEST(CorpusTest, SplitOffHeldOutCarvesEveryNthPiece) {
  // Two segments: 5 pieces (the last one short) and 1 piece; pieces numbered 0..5 overall.
  const std::string a = std::string(kChunkBytes * 4, 'a') + "tail";
  const std::string b(kChunkBytes, 'b');
  HeldOutSplit s = SplitOffHeldOut({a, b}, 3);
  // Pieces 2 and 5 are held out; 0-1 and 3-4 stay whole runs of the first segment.
  ASSERT_EQ(s.held_out.size(), 2u);
  EXPECT_EQ(s.held_out[0], a.substr(2 * kChunkBytes, kChunkBytes));
  EXPECT_EQ(s.held_out[1], b);
  ASSERT_EQ(s.fit.size(), 2u);
  EXPECT_EQ(s.fit[0], a.substr(0, 2 * kChunkBytes));
  EXPECT_EQ(s.fit[1], a.substr(3 * kChunkBytes));

  HeldOutSplit none = SplitOffHeldOut({a, b}, 0);
  EXPECT_TRUE(none.held_out.empty());
  EXPECT_EQ(none.fit, (Segments{a, b}));
}

}  // namespace
}  // namespace wxp::legal
