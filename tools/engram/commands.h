#pragma once

#include <CLI/CLI.hpp>

namespace engram::cli {

// Each adds one subcommand to `app`; when it runs, it stores its exit code in `exit_code`.
void add_append_command(CLI::App& app, int& exit_code);
void add_replay_command(CLI::App& app, int& exit_code);
void add_audit_command(CLI::App& app, int& exit_code);
void add_token_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);
// `replay rebuild` and `replay verify`, added under the replay command.
void add_rebuild_commands(CLI::App& replay, int& exit_code);

}  // namespace engram::cli
