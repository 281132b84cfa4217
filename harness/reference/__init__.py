"""The PyTorch reference: the user's classifier, loss, optimizer and training loop."""
