#!/usr/bin/env python3
"""Trains a small PyTorch classifier on synthetic MNIST-like digits (CPU,
well under a minute) and logs it to TensorBoard through tblogd.

    tblogd --logdir ./logs &                  # or the sidecar container
    python3 examples/python/train_mnist_like.py --log-dir mnist/example
    tensorboard --logdir ./logs

What it logs (the only change from torch.utils.tensorboard is the import):
  loss, accuracy        train and validation curves on one chart per metric
                        (add_scalars: sub-runs loss_train, loss_validation, ...)
  batch/loss            the training loss of every batch
  weights/<param>       a histogram of every parameter, every epoch
  samples               validation images, and samples/labels: a Markdown
                        table of their true and predicted classes
  hparams               the run's hyperparameters with its final metrics
  graph                 the model, traced
"""

import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "client", "python"))
from tblog import SummaryWriter  # noqa: E402  (instead of torch.utils.tensorboard)

CLASSES = 10
SIZE = 12


def make_dataset(count, generator, templates):
    """Digits-like images: one random template per class, shifted by a pixel
    and blurred by noise, so a small network needs a few epochs to learn it."""
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    images = templates[labels].clone()
    shifts = torch.randint(-1, 2, (count, 2), generator=generator)
    for i in range(count):
        images[i] = torch.roll(images[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])),
                               dims=(1, 2))
    images += 0.5 * torch.randn(images.shape, generator=generator)
    return images.clamp(0, 1), labels


def build_model(hidden):
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * (SIZE // 2) ** 2, hidden), nn.ReLU(),
        nn.Linear(hidden, CLASSES))


def evaluate(model, images, labels, loss_fn):
    model.eval()
    with torch.no_grad():
        logits = model(images)
        loss = loss_fn(logits, labels).item()
        predicted = logits.argmax(dim=1)
        accuracy = (predicted == labels).float().mean().item()
    model.train()
    return loss, accuracy, predicted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", default="mnist/example",
                        help="run directory, relative to the daemon's logdir")
    parser.add_argument("--address", default=None,
                        help="tblogd address (default $TBLOG_ADDRESS or 127.0.0.1:6066)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    templates = (torch.rand((CLASSES, 1, SIZE, SIZE), generator=generator) > 0.6).float()
    train_x, train_y = make_dataset(3000, generator, templates)
    val_x, val_y = make_dataset(500, generator, templates)

    model = build_model(args.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    writer = SummaryWriter(args.log_dir, address=args.address)
    writer.add_graph(model, train_x[:1])                          # traced, as PyTorch does
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for start in range(0, len(train_x), args.batch_size):
            index = order[start:start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(train_x[index]), train_y[index])
            loss.backward()
            optimizer.step()
            writer.add_scalar("batch/loss", loss, step)   # a tensor: no .item() needed
            step += 1

        train_loss, train_acc, _ = evaluate(model, train_x, train_y, loss_fn)
        val_loss, val_acc, predicted = evaluate(model, val_x, val_y, loss_fn)
        writer.add_scalars("loss", {"train": train_loss, "validation": val_loss}, epoch)
        writer.add_scalars("accuracy", {"train": train_acc, "validation": val_acc}, epoch)
        for name, parameter in model.named_parameters():
            writer.add_histogram(f"weights/{name}", parameter, epoch)
        writer.add_images("samples", val_x[:8], epoch)             # NCHW floats in [0, 1]
        rows = "\n".join(f"| {i} | {int(val_y[i])} | {int(predicted[i])} |" for i in range(8))
        writer.add_text("samples/labels", "| image | true | predicted |\n|---|---|---|\n" + rows,
                        epoch)
        print(f"epoch {epoch}: train loss {train_loss:.3f} acc {train_acc:.3f}, "
              f"validation loss {val_loss:.3f} acc {val_acc:.3f}", flush=True)

    writer.add_hparams({"lr": args.lr, "batch_size": args.batch_size, "hidden": args.hidden,
                        "optimizer": "sgd"},
                       {"hparam/accuracy": val_acc, "hparam/loss": val_loss},
                       run_name="hparams")
    writer.close()
    print(f"logged to {writer.get_logdir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
