#include "server/blobs/disk_blobs.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/sha256.h"
#include "gtest/gtest.h"

namespace wxp::server {
namespace {

namespace fs = std::filesystem;

std::string Root(const std::string& name) {
  const std::string root = ::testing::TempDir() + "/blobs_" + name;
  fs::remove_all(root);
  return root;
}

std::unique_ptr<DiskBlobs> OpenAt(const std::string& root, uint64_t max = 1 << 20) {
  auto b = DiskBlobs::Open({root, max});
  EXPECT_TRUE(b.ok()) << b.status();
  return *std::move(b);
}

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

TEST(DiskBlobsTest, ChunkedUploadThenRangedReads) {
  auto blobs = OpenAt(Root("chunked"));
  const std::string data = Bytes(10000, 'a');
  const std::string id = Sha256Hex(data);
  auto begin = blobs->BeginUpload(id, data.size());
  ASSERT_TRUE(begin.ok());
  EXPECT_EQ(begin->committed, 0u);
  EXPECT_FALSE(blobs->Has(id));
  for (size_t off = 0; off < data.size(); off += 4096) {
    auto c = blobs->Append(id, off, data.substr(off, 4096));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(*c, std::min(off + 4096, data.size()));
    EXPECT_FALSE(blobs->Has(id));  // not visible before Finish
  }
  ASSERT_TRUE(blobs->Finish(id).ok());
  EXPECT_TRUE(blobs->Has(id));
  EXPECT_EQ(*blobs->Size(id), data.size());
  EXPECT_EQ(*blobs->ReadAll(id), data);
  EXPECT_EQ(*blobs->Read(id, 9990, 100), data.substr(9990));
  EXPECT_EQ(*blobs->Read(id, 10000, 100), "");
  EXPECT_EQ(blobs->Read(id, 10001, 1).status().code(), absl::StatusCode::kOutOfRange);
  // Uploading it again finds it present.
  EXPECT_TRUE(blobs->BeginUpload(id, data.size())->already_present);
}

TEST(DiskBlobsTest, UploadResumesAfterARestart) {
  const std::string root = Root("resume");
  const std::string data = Bytes(6000, 'r');
  const std::string id = Sha256Hex(data);
  {
    auto blobs = OpenAt(root);
    ASSERT_TRUE(blobs->BeginUpload(id, data.size()).ok());
    ASSERT_TRUE(blobs->Append(id, 0, data.substr(0, 2500)).ok());
  }  // the server dies mid-upload
  auto blobs = OpenAt(root);
  EXPECT_EQ(blobs->UploadOffset(id)->committed, 2500u);
  auto begin = blobs->BeginUpload(id, data.size(), 2500);
  ASSERT_TRUE(begin.ok());
  EXPECT_EQ(begin->committed, 2500u);
  ASSERT_TRUE(blobs->Append(id, 2500, data.substr(2500)).ok());
  ASSERT_TRUE(blobs->Finish(id).ok());
  EXPECT_EQ(*blobs->ReadAll(id), data);
}

TEST(DiskBlobsTest, RefusalsLeaveNothingVisible) {
  auto blobs = OpenAt(Root("refusals"), 5000);
  const std::string data = Bytes(3000, 'x');
  const std::string id = Sha256Hex(data);
  EXPECT_EQ(blobs->BeginUpload("nothex", 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(blobs->BeginUpload(id, 6000).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(blobs->Append(id, 0, "x").status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(blobs->BeginUpload(id, data.size()).ok());
  EXPECT_EQ(blobs->BeginUpload(id, data.size()).status().code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(blobs->Append(id, 0, data.substr(0, 1000)).ok());
  auto gap = blobs->Append(id, 2000, data.substr(2000));
  EXPECT_EQ(gap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gap.status().message().find("expected offset 1000, got 2000"), std::string::npos);
  EXPECT_EQ(blobs->Append(id, 1000, std::string(2500, 'z')).status().code(),
            absl::StatusCode::kInvalidArgument);         // past the declared size
  EXPECT_EQ(blobs->UploadOffset(id)->committed, 1000u);  // refusals wrote nothing
  // Wrong bytes: the hash check refuses them and drops the partial upload.
  ASSERT_TRUE(blobs->Append(id, 1000, std::string(2000, 'z')).ok());
  auto finish = blobs->Finish(id);
  EXPECT_EQ(finish.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(finish.message().find("hash mismatch"), std::string::npos);
  EXPECT_FALSE(blobs->Has(id));
  EXPECT_EQ(blobs->UploadOffset(id)->committed, 0u);
  EXPECT_EQ(blobs->ReadAll(id).status().code(), absl::StatusCode::kNotFound);
}

TEST(DiskBlobsTest, AClientThatLostTrackRestartsFromItsOffset) {
  auto blobs = OpenAt(Root("restart"));
  const std::string data = Bytes(3000, 'k');
  const std::string id = Sha256Hex(data);
  ASSERT_TRUE(blobs->BeginUpload(id, data.size()).ok());
  ASSERT_TRUE(blobs->Append(id, 0, data.substr(0, 2000)).ok());
  blobs->Abandon(id);
  EXPECT_EQ(blobs->BeginUpload(id, data.size(), 2500).status().code(),
            absl::StatusCode::kFailedPrecondition);     // beyond what is held
  auto again = blobs->BeginUpload(id, data.size(), 0);  // starts over
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->committed, 0u);
  ASSERT_TRUE(blobs->Append(id, 0, data).ok());
  ASSERT_TRUE(blobs->Finish(id).ok());
  EXPECT_EQ(*blobs->ReadAll(id), data);
}

// The digest Finish checks covers a resumed prefix as it is on disk, not as it was sent.
TEST(DiskBlobsTest, AResumedPrefixIsHashedFromTheFile) {
  const std::string root = Root("resume-prefix");
  const std::string data = Bytes(5000, 'p');
  const std::string id = Sha256Hex(data);
  {
    auto blobs = OpenAt(root);
    ASSERT_TRUE(blobs->BeginUpload(id, data.size()).ok());
    ASSERT_TRUE(blobs->Append(id, 0, data.substr(0, 3000)).ok());
    blobs->Abandon(id);
    // Cut back to 1000 bytes by a client that lost track: only those are hashed again.
    ASSERT_TRUE(blobs->BeginUpload(id, data.size(), 1000).ok());
    ASSERT_TRUE(blobs->Append(id, 1000, data.substr(1000)).ok());
    ASSERT_TRUE(blobs->Finish(id).ok());
    EXPECT_EQ(*blobs->ReadAll(id), data);
  }
  const std::string other = Bytes(4000, 'q');
  const std::string other_id = Sha256Hex(other);
  {
    auto blobs = OpenAt(root);
    ASSERT_TRUE(blobs->BeginUpload(other_id, other.size()).ok());
    ASSERT_TRUE(blobs->Append(other_id, 0, other.substr(0, 2000)).ok());
  }  // the server dies mid-upload; the partial file is damaged meanwhile
  {
    std::fstream f(root + "/partial/" + other_id, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('!');
  }
  auto blobs = OpenAt(root);
  ASSERT_EQ(blobs->BeginUpload(other_id, other.size(), 2000)->committed, 2000u);
  ASSERT_TRUE(blobs->Append(other_id, 2000, other.substr(2000)).ok());
  EXPECT_EQ(blobs->Finish(other_id).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(blobs->Has(other_id));
}

// Replicas share the directory: what Finish publishes is checked as it is in the file, since
// another process may have written to the same partial upload.
TEST(DiskBlobsTest, ASharedStoreHashesTheFileItPublishes) {
  const std::string root = Root("shared");
  auto b = DiskBlobs::Open({root, 1 << 20, /*shared=*/true});
  ASSERT_TRUE(b.ok()) << b.status();
  DiskBlobs& blobs = **b;
  const std::string data = Bytes(3000, 's');
  const std::string id = Sha256Hex(data);
  ASSERT_TRUE(blobs.BeginUpload(id, data.size()).ok());
  ASSERT_TRUE(blobs.Append(id, 0, data).ok());
  {
    std::fstream f(root + "/partial/" + id, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('!');
  }
  EXPECT_EQ(blobs.Finish(id).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(blobs.Has(id));
  ASSERT_TRUE(blobs.BeginUpload(id, data.size()).ok());
  ASSERT_TRUE(blobs.Append(id, 0, data).ok());
  ASSERT_TRUE(blobs.Finish(id).ok());
  EXPECT_EQ(*blobs.ReadAll(id), data);
}

TEST(DiskBlobsTest, ConcurrentUploadsOfDifferentBlobs) {
  auto blobs = OpenAt(Root("concurrent"));
  std::vector<std::string> datas, ids;
  for (int t = 0; t < 4; ++t) {
    datas.push_back(Bytes(20000 + t, static_cast<char>('a' + t)));
    ids.push_back(Sha256Hex(datas.back()));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ASSERT_TRUE(blobs->BeginUpload(ids[t], datas[t].size()).ok());
      for (size_t off = 0; off < datas[t].size(); off += 1000) {
        ASSERT_TRUE(blobs->Append(ids[t], off, datas[t].substr(off, 1000)).ok());
      }
      ASSERT_TRUE(blobs->Finish(ids[t]).ok());
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(*blobs->ReadAll(ids[t]), datas[t]);
}

TEST(DiskBlobsTest, PutAndRecover) {
  const std::string root = Root("recover");
  auto blobs = OpenAt(root);
  const std::string keep = *blobs->Put("keep me");
  const std::string drop = *blobs->Put("drop me");
  const std::string corrupt = *blobs->Put("corrupt me");
  EXPECT_EQ(keep, Sha256Hex("keep me"));
  EXPECT_EQ(*blobs->Put("keep me"), keep);  // idempotent
  std::ofstream(root + "/blobs/" + corrupt.substr(0, 2) + "/" + corrupt) << "bit rot";
  std::ofstream(root + "/blobs/" + keep.substr(0, 2) + "/x.tmp.1.2") << "half";
  auto summary = blobs->Recover([&](const std::string& id) { return id != drop; });
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->removed_unreferenced, 1);
  EXPECT_EQ(summary->removed_corrupt, 1);
  EXPECT_EQ(summary->removed_temporaries, 1);
  EXPECT_TRUE(blobs->Has(keep));
  EXPECT_FALSE(blobs->Has(drop));
  EXPECT_FALSE(blobs->Has(corrupt));
}

// Garbage collection spares what is young: a client may upload just before the call that
// references the blob, and a partial upload may be resumed.
TEST(DiskBlobsTest, RecoverCollectsOnlyUnreferencedBlobsOlderThanTheGracePeriod) {
  const std::string root = Root("gc");
  auto blobs = OpenAt(root);
  const std::string old_unref = *blobs->Put("old, unreferenced");
  const std::string new_unref = *blobs->Put("new, unreferenced");
  const std::string old_ref = *blobs->Put("old, referenced");
  const std::string partial_id = Sha256Hex("abandoned upload");
  ASSERT_TRUE(blobs->BeginUpload(partial_id, 16, 0).ok());
  ASSERT_TRUE(blobs->Append(partial_id, 0, "abandoned").ok());
  blobs->Abandon(partial_id);
  const auto two_hours_ago = std::filesystem::file_time_type::clock::now() - std::chrono::hours(2);
  for (const std::string& id : {old_unref, old_ref}) {
    std::filesystem::last_write_time(root + "/blobs/" + id.substr(0, 2) + "/" + id, two_hours_ago);
  }
  std::filesystem::last_write_time(root + "/partial/" + partial_id, two_hours_ago);

  auto summary = blobs->Recover([&](const std::string& id) { return id == old_ref; },
                                absl::Now() - absl::Hours(1));
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->removed_unreferenced, 1);
  EXPECT_EQ(summary->kept_recent_unreferenced, 1);
  EXPECT_EQ(summary->removed_stale_partials, 1);
  EXPECT_FALSE(blobs->Has(old_unref));
  EXPECT_TRUE(blobs->Has(new_unref));
  EXPECT_TRUE(blobs->Has(old_ref));
  EXPECT_EQ(blobs->UploadOffset(partial_id)->committed, 0u);
}

}  // namespace
}  // namespace wxp::server
