"""Deployment: exporting a model, loading an exported folder, backends and the streaming runner."""
