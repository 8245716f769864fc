"""mitoscale.pipeline"""
