"""Thin request handlers; each module registers its codes on a Router."""
