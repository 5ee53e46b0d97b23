"""stylegan_plus.training"""
