// rosetta-demo: loads a small demo collection and runs one explained cross-modal query.
//
//   rosetta-demo [--data DIR] [--shared DIR] [--query-out FILE]
//
// The README's first quick-start command runs this. It creates collection "photos" in DIR
// (default ./rosetta-data) unless it exists, from the Flickr8k x TinyCLIP image and caption
// embeddings in <shared>/flickr8k_tinyclip-vit40m_1k when present (default ../shared/data), else
// from 1000 synthetic records made with a fixed seed. One caption in ten is left out, so the demo
// shows how a record with a missing modality is ranked. Then it searches with the caption of item
// 0 (text) against the image and caption fields, through the CLI's own search command, so the
// output is what `rosetta search` prints. The query is also written to FILE (default
// ./rosetta-demo-query.json) so that it can be sent to a server: `rosetta --server
// 127.0.0.1:7700 search photos --query rosetta-demo-query.json`.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "net/embedded_client.h"
#include "schema/array_io.h"
#include "schema/json.h"
#include "schema/status_macros.h"
#include "tools/cli/cli.h"

namespace rosetta {
namespace {

constexpr char kCollection[] = "photos";
constexpr size_t kSyntheticRecords = 1000;
constexpr size_t kSyntheticDim = 64;
constexpr uint64_t kSyntheticSeed = 20261125;

struct DemoData {
  Matrix<float> images;
  Matrix<float> captions;
  std::vector<std::string> caption_text;  // empty for synthetic data.
  std::string source;
  std::string encoder;
};

// Reads the caption text of each row from captions_used.tsv ("row<TAB>image<TAB>caption").
std::vector<std::string> ReadCaptions(const std::string& path, size_t rows) {
  std::vector<std::string> out(rows);
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    const size_t a = line.find('\t');
    const size_t b = a == std::string::npos ? a : line.find('\t', a + 1);
    if (b == std::string::npos) continue;
    char* end = nullptr;
    const unsigned long row = std::strtoul(line.c_str(), &end, 10);
    if (end != line.c_str() + a || row >= rows) continue;  // header or malformed line
    out[row] = line.substr(b + 1);
  }
  return out;
}

// Synthetic paired data: each item has a latent topic vector; its "image" and "caption" are the
// topic plus independent noise (so they match each other better than other items), in two
// different score bands (captions share a common offset direction), as CLIP's modalities do.
DemoData Synthetic() {
  DemoData d;
  d.source = "synthetic (seed " + std::to_string(kSyntheticSeed) + ")";
  d.encoder = "synthetic@1";
  std::mt19937_64 rng(kSyntheticSeed);
  std::normal_distribution<float> g(0.f, 1.f);
  const size_t n = kSyntheticRecords, dim = kSyntheticDim;
  d.images = {n, dim, std::vector<float>(n * dim)};
  d.captions = {n, dim, std::vector<float>(n * dim)};
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < dim; ++j) {
      const float topic = g(rng);
      d.images.data[i * dim + j] = topic + 0.8f * g(rng);
      d.captions.data[i * dim + j] = topic + 0.8f * g(rng) + (j == 0 ? 3.f : 0.f);
    }
  }
  return d;
}

absl::StatusOr<DemoData> Flickr(const std::string& dir) {
  DemoData d;
  ASSIGN_OR_RETURN(d.images, ReadFloatMatrix(dir + "/image_emb.npy"));
  ASSIGN_OR_RETURN(d.captions, ReadFloatMatrix(dir + "/text_emb.npy"));
  d.caption_text = ReadCaptions(dir + "/captions_used.tsv", d.captions.rows);
  d.source = "flickr8k";
  d.encoder = "tinyclip-vit40m-32@laion400m";
  return d;
}

absl::Status Load(Client& client, const DemoData& data) {
  CollectionSchema schema;
  schema.name = kCollection;
  schema.spaces["clip"] = Space{"clip", static_cast<int>(data.images.cols), Metric::kCosine,
                                data.encoder};
  schema.fields["image"] = Field{"image", "clip", "image", 0.5f};
  schema.fields["caption"] = Field{"caption", "clip", "text", 0.5f};
  schema.attributes["caption_text"] = AttributeType::kString;
  schema.attributes["row"] = AttributeType::kInt;
  RETURN_IF_ERROR(client.CreateCollection(schema));

  std::vector<Record> records(data.images.rows);
  for (size_t i = 0; i < records.size(); ++i) {
    Record& r = records[i];
    r.id = absl::StrCat("p", i);
    r.vectors["image"].assign(data.images.row(i), data.images.row(i) + data.images.cols);
    // One caption in ten is missing: the record must still be findable by its image.
    if (i % 10 != 9) {
      r.vectors["caption"].assign(data.captions.row(i), data.captions.row(i) + data.captions.cols);
      if (!data.caption_text.empty()) r.attributes["caption_text"] = data.caption_text[i];
    }
    r.attributes["row"] = static_cast<int64_t>(i);
    r.provenance.source = data.source;
    r.provenance.dataset_version = "demo-1k";
    r.provenance.steps = {"encode", "l2-normalize"};
  }
  ASSIGN_OR_RETURN(WriteResult written, client.Upsert(kCollection, std::move(records)));
  std::cout << "loaded " << written.written << " records into collection \"" << kCollection
            << "\" from " << data.source << " (one caption in ten left out)\n";
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  std::string data_dir = "./rosetta-data";
  std::string shared = "../shared/data";
  std::string query_out = "rosetta-demo-query.json";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) {
      data_dir = argv[++i];
    } else if (a == "--shared" && i + 1 < argc) {
      shared = argv[++i];
    } else if (a == "--query-out" && i + 1 < argc) {
      query_out = argv[++i];
    } else {
      std::cerr << "usage: rosetta-demo [--data DIR] [--shared DIR] [--query-out FILE]\n";
      return 2;
    }
  }
  const std::string flickr = shared + "/flickr8k_tinyclip-vit40m_1k";
  absl::StatusOr<DemoData> data = std::filesystem::is_directory(flickr)
                                      ? Flickr(flickr)
                                      : absl::StatusOr<DemoData>(Synthetic());
  if (!data.ok()) {
    std::cerr << "error: " << data.status() << "\n";
    return 1;
  }
  {
    engine::DatabaseOptions options;
    options.store.sync = storage::SyncPolicy::kNone;  // a bulk load; durable at close.
    absl::StatusOr<std::unique_ptr<Client>> client = OpenEmbeddedClient(data_dir, options);
    if (!client.ok()) {
      std::cerr << "error: " << client.status() << "\n";
      return 1;
    }
    absl::StatusOr<std::vector<std::string>> names = (*client)->ListCollections();
    const bool exists = names.ok() && std::find(names->begin(), names->end(), kCollection) !=
                                          names->end();
    if (exists) {
      std::cout << "collection \"" << kCollection << "\" already exists in " << data_dir << "\n";
    } else if (absl::Status s = Load(**client, *data); !s.ok()) {
      std::cerr << "error: " << s << "\n";
      return 1;
    }
  }  // closes the database so the CLI below can open it.

  // The query: item 0's caption (a text vector) against both fields of the space.
  SearchRequest q;
  q.k = 5;
  QueryInput in;
  in.vector.assign(data->captions.row(0), data->captions.row(0) + data->captions.cols);
  in.space = "clip";
  in.modality = "text";
  q.inputs.push_back(std::move(in));
  std::cout << "\nquery: the caption of p0"
            << (data->caption_text.empty() ? "" : " (\"" + data->caption_text[0] + "\")")
            << ", as text, against fields image and caption (calibrated weighted fusion)\n"
            << "$ rosetta --data " << data_dir << " search photos --query " << query_out << "\n\n";
  const std::string query_text = DumpJson(SearchRequestToJson(q));
  if (std::ofstream f(query_out); !(f << query_text << "\n")) {
    std::cerr << "error: cannot write the demo query to " << query_out << "\n";
    return 1;
  }
  std::istringstream query_json(query_text);
  const int rc = cli::RunCli({"--data", data_dir, "search", kCollection, "--query", "-"},
                             query_json, std::cout, std::cerr);
  std::cout << "\nthe query is in " << query_out << "; with rosettad serving " << data_dir
            << ", in another terminal:\n  rosetta --server 127.0.0.1:7700 search photos --query "
            << query_out << "\n  rosetta --server 127.0.0.1:7700 describe photos\n";
  return rc;
}

}  // namespace
}  // namespace rosetta

int main(int argc, char** argv) { return rosetta::Main(argc, argv); }
