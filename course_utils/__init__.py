"""Shared code for the ResNet course."""
