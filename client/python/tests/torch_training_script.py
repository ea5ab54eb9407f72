"""A PyTorch training script as users write it, logging through
tblog.SummaryWriter (one import changed from torch.utils.tensorboard): a
two-layer MLP on a synthetic 3-class problem, with the calls such a script
makes. It writes what it logged (tags, steps, values) as JSON to --expect,
for the test to compare with what it reads back.

    python torch_training_script.py --log-dir runs/mlp --expect out.json
"""

import argparse
import json

import torch
from torch import nn

from tblog import SummaryWriter   # was: from torch.utils.tensorboard import SummaryWriter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()

    torch.manual_seed(0)
    centers = torch.randn(3, 8) * 2
    labels = torch.randint(0, 3, (600,))
    x = centers[labels] + torch.randn(600, 8)
    train_x, train_y, val_x, val_y = x[:480], labels[:480], x[480:], labels[480:]
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    def evaluate(inputs, targets):
        with torch.no_grad():
            logits = model(inputs)
            return (loss_fn(logits, targets).item(),
                    (logits.argmax(dim=1) == targets).float().mean().item())

    expect = {"scalars": {}, "histograms": {}, "text": {}, "hparams": {}}

    def log_scalar(key, step, value):
        expect["scalars"].setdefault(key, []).append([step, value])

    writer = SummaryWriter(args.log_dir, hparams={"lr": args.lr, "hidden": 16})
    writer.add_graph(model, train_x[:1])
    step = 0
    for epoch in range(args.epochs):
        model.train()
        for start in range(0, len(train_x), 32):
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[start:start + 32]), train_y[start:start + 32])
            loss.backward()
            optimizer.step()
            writer.add_scalar("batch/loss", loss, step)      # a tensor: no .item() needed
            log_scalar("batch/loss", step, loss.item())
            step += 1
        train_loss, train_acc = evaluate(train_x, train_y)
        val_loss, val_acc = evaluate(val_x, val_y)
        writer.add_scalars("loss", {"train": train_loss, "validation": val_loss}, epoch)
        writer.add_scalars("accuracy", {"train": train_acc, "validation": val_acc}, epoch)
        for sub, value in [("loss_train", train_loss), ("loss_validation", val_loss),
                           ("accuracy_train", train_acc), ("accuracy_validation", val_acc)]:
            log_scalar(f"{sub}:{sub.split('_')[0]}", epoch, value)
        writer.add_scalar("epoch/lr", args.lr, epoch, new_style=True, double_precision=True)
        log_scalar("epoch/lr", epoch, args.lr)
        for name, parameter in model.named_parameters():
            writer.add_histogram(f"weights/{name}", parameter, epoch)
            values = parameter.detach().double()
            expect["histograms"].setdefault(f"weights/{name}", []).append(
                [epoch, values.min().item(), values.max().item(), values.numel(),
                 values.sum().item()])
        with torch.no_grad():
            predicted = model(val_x[:4]).argmax(dim=1)
        rows = "\n".join(f"| {i} | {t} | {p} |" for i, (t, p) in
                         enumerate(zip(val_y[:4].tolist(), predicted.tolist())))
        text = "| sample | true | predicted |\n|---|---|---|\n" + rows
        writer.add_text("samples/labels", text, epoch)
        expect["text"].setdefault("samples/labels/text_summary", []).append([epoch, text])
    final_loss, final_acc = evaluate(val_x, val_y)
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
