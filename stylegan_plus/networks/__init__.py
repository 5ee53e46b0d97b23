"""stylegan_plus.networks"""
