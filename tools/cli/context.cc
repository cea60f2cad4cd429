// The per-invocation context and the connection point (OpenClient).
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/database.h"
#include "net/embedded_client.h"
#include "net/remote_client.h"
#include "schema/status_macros.h"
#include "tools/cli/command.h"

namespace rosetta::cli {

absl::StatusOr<std::unique_ptr<Client>> OpenClient(const GlobalOptions& options) {
  if (!options.server.empty()) {
    // The one place the two modes differ: every command talks to Client.
    return net::ConnectRemoteClient(options.server_host,
                                    static_cast<uint16_t>(options.server_port), options.token);
  }
  engine::DatabaseOptions db_options;
  db_options.store.create_if_missing = true;
  db_options.store.sync = options.sync;
  db_options.device = options.device;
  return OpenEmbeddedClient(options.data_dir, db_options);
}

absl::StatusOr<Client*> CliContext::client() {
  if (client_ == nullptr) {
    ASSIGN_OR_RETURN(client_, OpenClient(globals_));
  }
  return client_.get();
}

absl::StatusOr<std::string> CliContext::ReadInput(const std::string& path,
                                                  const std::string& what) {
  if (path == "-") {
    if (stdin_used_) {
      return UsageError(absl::StrCat(what, ": stdin (-) can be read only once per command"));
    }
    stdin_used_ = true;
    std::ostringstream buf;
    buf << in_.rdbuf();
    if (in_.bad()) return absl::DataLossError(absl::StrCat(what, ": error reading stdin"));
    return buf.str();
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " \"", path, "\": is a directory"));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return absl::NotFoundError(absl::StrCat(what, " \"", path, "\": cannot open for reading"));
  }
  std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return absl::DataLossError(absl::StrCat(what, " \"", path, "\": read error"));
  return data;
}

void CliContext::EmitJson(const Json& j) {
  // Replace invalid UTF-8 instead of throwing: ids and attribute strings come from users.
  out_ << DumpJson(j, 2) << "\n";
}

void CliContext::EmitLiveLine(const std::string& line) {
  if (live_out_ == nullptr) {
    out_ << line << "\n";
    return;
  }
  // Whatever the buffer holds was meant to come first.
  *live_out_ << out_.str() << line << "\n";
  out_.str("");
  live_out_->flush();
}

void CliContext::ShowProgress(const std::string& text, bool final) {
  if (!err_is_tty_ || err_ == nullptr) return;
  // Overwrite the previous line; pad with spaces when the new text is shorter.
  std::string line = "\r" + text;
  if (text.size() < progress_width_) line += std::string(progress_width_ - text.size(), ' ');
  progress_width_ = final ? 0 : text.size();
  *err_ << line << (final ? "\n" : "");
  err_->flush();
}

}  // namespace rosetta::cli
