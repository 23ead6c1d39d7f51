#include <CLI/CLI.hpp>

#include "tools/engram/cli.h"
#include "tools/engram/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "engram: an event-sourced CQRS engine. Commands append events to a durable,\n"
      "hash-chained log; everything else is derived from it."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "engram 0.1.0");
  int exit_code = engram::cli::kOk;
  engram::cli::add_append_command(app, exit_code);
  engram::cli::add_replay_command(app, exit_code);
  engram::cli::add_audit_command(app, exit_code);
  engram::cli::add_token_command(app, exit_code);
  engram::cli::add_serve_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return engram::cli::kUsage;
  }
  return exit_code;
}
