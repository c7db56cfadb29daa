"""The ResNet Explorer Streamlit app: thin pages over resnet_core."""
