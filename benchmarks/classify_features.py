#!/usr/bin/env python3
"""Which encoder layer should the frozen head read? Test accuracy per layer.

Trains the same head (fixed hyperparameters, no tuning) on the frozen features of
each layer of one CAE encoder and prints a table; writes JSON.

    python benchmarks/classify_features.py --encoder runs/cae/<stamp>/cae.keras \
        [--data-dir DIR] [--epochs 30] [--train-size N] [--test-size N] \
        [--out benchmarks/results/classify_features.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="cae.keras or encoder.keras")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--layers", default="code,dense1,conv3,conv2")
    parser.add_argument("--out", default="benchmarks/results/classify_features.json")
    args = parser.parse_args()

    from runtime.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    import keras

    from data.datasets import load_dataset
    from models.classifier import encoder_from_model
    from models.saving import load_keras_model
    from storage.files import write_json
    from training.classifier import train_pretrained
    from training.classifier_config import Settings

    data = load_dataset("fashion_mnist", data_dir=args.data_dir,
                        train_limit=args.train_size, test_limit=args.test_size)
    encoder = encoder_from_model(load_keras_model(args.encoder, "encoder"))
    rows = []
    for layer in args.layers.split(","):
        settings = Settings(features=layer, epochs=args.epochs)
        start = time.perf_counter()
        res = train_pretrained(encoder, data.x_train, data.y_train, data.x_val, data.y_val,
                               data.x_test, data.y_test, settings, fine_tune=False)
        rows.append({"features": layer, "frozen_test_accuracy": res["frozen"]["test_accuracy"],
                     "frozen_val_accuracy": res["frozen"]["best_val_accuracy"],
                     "frozen_epochs": res["frozen"]["epochs"],
                     "head_parameters": res["frozen"]["trainable_parameters"],
                     "wall_time_s": time.perf_counter() - start})
        print(f"{layer:7s} frozen test {100 * rows[-1]['frozen_test_accuracy']:.2f}% "
              f"val {100 * rows[-1]['frozen_val_accuracy']:.2f}% "
              f"({rows[-1]['frozen_epochs']} epochs, {rows[-1]['head_parameters']} params)",
              flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    write_json(args.out, {"backend": keras.backend.backend(), "encoder": args.encoder,
                          "train_images": len(data.x_train), "test_images": len(data.x_test),
                          "head": "hidden 256, dropout 0.3, AdamW lr 1e-3 wd 1e-4",
                          "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
