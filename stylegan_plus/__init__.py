"""stylegan_plus: networks, loss plugins and the training loop of the fork."""
