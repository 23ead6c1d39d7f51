#pragma once

// A real `engram serve` child process on an ephemeral loopback port. The
// test owns it: stop() sends SIGTERM to its PID and waits; the destructor
// SIGKILLs it if the test did not stop it.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/assert.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace engram::test {

class ServeProcess {
 public:
  // Starts `binary serve --data data_dir --listen 127.0.0.1:0 [extra...]` and
  // waits (up to 30 s) for its "listening on" line.
  ServeProcess(std::string binary, std::string data_dir, std::vector<std::string> extra = {})
      : binary_(std::move(binary)), data_dir_(std::move(data_dir)) {
    const std::string out_path = io_ / "stdout";
    err_path_ = io_ / "stderr";
    std::vector<std::string> argv = {binary_,   "serve",    "--data",
                                     data_dir_, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ENGRAM_ASSERT(posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream f(out_path);
      std::string line;
      if (std::getline(f, line)) {
        const size_t colon = line.rfind(':');
        if (line.find("listening on") != std::string::npos && colon != std::string::npos) {
          port_ = static_cast<uint16_t>(std::stoi(line.substr(colon + 1)));
          return;
        }
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  bool running() const { return pid_ > 0 && port_ != 0; }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // SIGTERM and wait; returns the exit code.
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  std::string stderr_text() const {
    std::ifstream f(err_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  std::string binary_;
  std::string data_dir_;
  TempDir io_;
  std::string err_path_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int exit_code_ = -1;
};

}  // namespace engram::test
