"""stylegan_plus.losses"""
