"""Crowd-SFT engine: pure numpy simulation of grouping, tournament, points and Shapley."""
