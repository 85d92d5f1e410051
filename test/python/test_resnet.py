"""A torchvision ResNet-18 converted to normc's BatchNorm, trained next to
the original in float64: three SGD steps, after each of which the losses,
every parameter's gradient and (at the end) every running statistic and
num_batches_tracked must agree to 1e-10 relative; then one eval forward.

    test_resnet.py NORMC WORK_DIR
"""

import copy
import sys

import torch
import torchvision

import normrt.torch as nt

TOLERANCE = 1e-10


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    scale = b.abs().max().item() or 1.0
    return (a - b).abs().max().item() / scale


def main(normc, work):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).double()
    reference = copy.deepcopy(model)
    library = nt.compile_model(model, work, normc=normc, module="resnet18")
    nt.convert(model, library)
    converted = [name for name, m in model.named_modules() if isinstance(m, nt.NormModule)]
    assert len(converted) == 20, converted
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
                  for m in (reference, model)]
    loss_fn = torch.nn.CrossEntropyLoss()
    worst = {"loss": 0.0, "grad": 0.0, "state": 0.0}
    for step in range(3):
        x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
        labels = torch.randint(0, 1000, (4,))
        losses = []
        for m, opt in zip((reference, model), optimizers):
            opt.zero_grad()
            loss = loss_fn(m(x), labels)
            loss.backward()
            losses.append(loss)
        worst["loss"] = max(worst["loss"], rel(losses[1], losses[0]))
        theirs = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            worst["grad"] = max(worst["grad"], rel(p.grad, theirs[name].grad))
        for opt in optimizers:
            opt.step()
        print("step %d: loss torch %.15f normc %.15f" % (step, losses[0].item(),
                                                         losses[1].item()))
    theirs = reference.state_dict()
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            worst["state"] = max(worst["state"], rel(value, theirs[name]))
        elif not torch.equal(value, theirs[name]):
            print("FAIL: %s is %s, torch has %s" % (name, value, theirs[name]))
            return 1
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        worst["eval"] = rel(model(x), reference(x))
    print("worst relative differences: " +
          ", ".join("%s %.2e" % (k, v) for k, v in worst.items()))
    bad = [k for k, v in worst.items() if not v <= TOLERANCE]
    if bad:
        print("FAIL: above %g: %s" % (TOLERANCE, ", ".join(bad)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
