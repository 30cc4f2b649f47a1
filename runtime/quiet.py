"""Importing TensorFlow without its C++ start-up chatter on stderr.

TensorFlow 2.21 logs through absl before its log level is read, so
TF_CPP_MIN_LOG_LEVEL no longer hides the oneDNN and CUDA lines it prints at
import and at first device use. They would bury the one-line errors this
program promises, so the import and the device probe run with the process's
stderr file descriptor pointed at /dev/null.
"""

import os
import sys


def import_tensorflow_quietly() -> None:
    if "tensorflow" in sys.modules:
        return
    # 3 also hides the C++ "error" lines TensorFlow 2.21 prints on every tf.data
    # pipeline (NodeDef ... use_unbounded_threadpool) and grappler's remapper
    # notes: harmless, and real failures still raise Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # triggers the CUDA probe now, silently
        # tf.function retracing notes: expected when tasks build several models.
        tf.get_logger().setLevel("ERROR")
    except ImportError:
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
