"""Renderers: plans and reports to text or JSON. They only render; decisions live in plan.py."""
