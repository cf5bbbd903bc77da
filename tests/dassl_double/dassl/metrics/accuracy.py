def compute_accuracy(output, target, topk=(1, )):
    """Top-k accuracy in percent, one 1-element tensor per k.

    Like upstream this uses .view(-1), which fails on recent torch when any k > 1
    (the transposed slice is not contiguous); top-1 works.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]  # models may return (logits, features)
    batch_size = target.size(0)
    _, pred = output.topk(max(topk), 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
    return [correct[:k].view(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size) for k in topk]
