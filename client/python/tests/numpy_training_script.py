"""A training script as a PyTorch user writes it, with NumPy standing in
for torch (torch is not installed on the project's test machines): a
two-layer MLP on a synthetic 3-class problem, logged through
tblog.SummaryWriter with the calls such a script makes. It writes what it
logged (tags, steps, values) as JSON to --expect, for the test to compare
with what it reads back.

    python numpy_training_script.py --log-dir runs/mlp --expect out.json
"""

import argparse
import json

import numpy as np

from tblog import SummaryWriter   # was: from torch.utils.tensorboard import SummaryWriter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 8)) * 2
    labels = rng.integers(0, 3, size=600)
    x = (centers[labels] + rng.standard_normal((600, 8))).astype(np.float32)
    train_x, train_y, val_x, val_y = x[:480], labels[:480], x[480:], labels[480:]
    params = {"fc1.weight": rng.standard_normal((8, 16)).astype(np.float32) * 0.3,
              "fc1.bias": np.zeros(16, np.float32),
              "fc2.weight": rng.standard_normal((16, 3)).astype(np.float32) * 0.3,
              "fc2.bias": np.zeros(3, np.float32)}

    def forward(inputs):
        hidden = np.maximum(inputs @ params["fc1.weight"] + params["fc1.bias"], 0)
        logits = hidden @ params["fc2.weight"] + params["fc2.bias"]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return hidden, p / p.sum(axis=1, keepdims=True)

    def loss_and_accuracy(inputs, targets):
        _, p = forward(inputs)
        loss = float(-np.log(p[np.arange(len(targets)), targets] + 1e-9).mean())
        return loss, float((p.argmax(axis=1) == targets).mean())

    expect = {"scalars": {}, "histograms": {}, "text": {}, "hparams": {}}

    def log_scalar(key, step, value):
        expect["scalars"].setdefault(key, []).append([step, value])

    writer = SummaryWriter(args.log_dir, hparams={"lr": args.lr, "hidden": 16})
    step = 0
    for epoch in range(args.epochs):
        for start in range(0, len(train_x), 32):
            xb, yb = train_x[start:start + 32], train_y[start:start + 32]
            hidden, p = forward(xb)
            loss = float(-np.log(p[np.arange(len(yb)), yb] + 1e-9).mean())
            grad = p.copy()
            grad[np.arange(len(yb)), yb] -= 1
            grad /= len(yb)
            grads = {"fc2.weight": hidden.T @ grad, "fc2.bias": grad.sum(axis=0)}
            back = (grad @ params["fc2.weight"].T) * (hidden > 0)
            grads["fc1.weight"], grads["fc1.bias"] = xb.T @ back, back.sum(axis=0)
            for name in params:
                params[name] -= args.lr * grads[name].astype(np.float32)
            writer.add_scalar("batch/loss", loss, step)
            log_scalar("batch/loss", step, loss)
            step += 1
        train_loss, train_acc = loss_and_accuracy(train_x, train_y)
        val_loss, val_acc = loss_and_accuracy(val_x, val_y)
        writer.add_scalars("loss", {"train": train_loss, "validation": val_loss}, epoch)
        writer.add_scalars("accuracy", {"train": train_acc, "validation": val_acc}, epoch)
        for sub, value in [("loss_train", train_loss), ("loss_validation", val_loss)]:
            log_scalar(f"{sub}:loss", epoch, value)
        for sub, value in [("accuracy_train", train_acc), ("accuracy_validation", val_acc)]:
            log_scalar(f"{sub}:accuracy", epoch, value)
        writer.add_scalar("epoch/lr", args.lr, epoch, new_style=True, double_precision=True)
        log_scalar("epoch/lr", epoch, args.lr)
        for name, value in params.items():
            writer.add_histogram(f"weights/{name}", value, epoch)
            expect["histograms"].setdefault(f"weights/{name}", []).append(
                [epoch, float(value.min()), float(value.max()), int(value.size),
                 float(value.astype(np.float64).sum())])
        _, p = forward(val_x[:4])
        rows = "\n".join(f"| {i} | {t} | {q} |" for i, (t, q) in
                         enumerate(zip(val_y[:4], p.argmax(axis=1))))
        text = "| sample | true | predicted |\n|---|---|---|\n" + rows
        writer.add_text("samples/labels", text, epoch)
        expect["text"].setdefault("samples/labels/text_summary", []).append([epoch, text])
    final_loss, final_acc = loss_and_accuracy(val_x, val_y)
    writer.add_hparams({"lr": args.lr, "hidden": 16},
                       {"hparam/accuracy": final_acc, "hparam/loss": final_loss},
                       run_name="hparams")
    log_scalar("hparams:hparam/accuracy", 0, final_acc)
    log_scalar("hparams:hparam/loss", 0, final_loss)
    expect["hparams"] = {"lr": args.lr, "hidden": 16}
    writer.close()
    with open(args.expect, "w") as f:
        json.dump(expect, f)
    print(f"logged to {writer.get_logdir()}; final validation accuracy {final_acc:.3f}")


if __name__ == "__main__":
    main()
