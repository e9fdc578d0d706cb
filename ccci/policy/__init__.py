"""Policies: YAML documents, validated by JSON Schema, turned once into typed frozen objects."""
