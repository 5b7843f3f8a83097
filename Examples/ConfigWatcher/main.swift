// ConfigWatcher: a small service that follows one configuration key through KVGossip and logs
// its value and dirtiness as they change, until SIGINT or SIGTERM.
//
//   ConfigWatcherExample --control /run/kvgossip/control.sock [--control 10.0.0.2:7948 ...] --key /app/db/url
//       [--control-key me.key --control-grant me.grant --root ed25519:…]   (needed for a HOST:PORT)
//
// Every value is verified against the cluster's root (Docs/client.md §Verification): learned from
// the local socket, or given with --root, which a HOST:PORT endpoint needs.

import Foundation

exit(await WatcherService.run(Array(CommandLine.arguments.dropFirst())))
