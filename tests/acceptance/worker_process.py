"""A worker process for acceptance tests: ``python worker_process.py '<json config>'``.

The config holds ``dsn``, ``schema``, ``app_options`` (``Werk`` keywords) and
``worker_options`` (``Worker`` keywords). The worker runs in the main thread, so it
installs its SIGTERM/SIGINT handlers and drives time limits with SIGALRM, as under the CLI.
Exit code: 0 after a clean stop.
"""

from __future__ import annotations

import json
import logging
import sys

from pgwerk import Werk, Worker


def main() -> int:
    config = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(process)d %(threadName)s %(name)s "
                               "%(levelname)s %(message)s")
    app = Werk(config["dsn"], schema=config["schema"], **config["app_options"])
    try:
        Worker(app, **config["worker_options"]).run()
    finally:
        app.close()
    logging.getLogger("worker_process").info("worker process exits cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
