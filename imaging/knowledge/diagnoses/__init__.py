"""Data only: one JSON list of diagnosis entries per region (see ../SCHEMA.md).

A package so that the JSON files ship in the wheel as package data.
"""
