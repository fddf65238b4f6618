# %% [markdown]
# # 8. Lab: train a mini Transformer
#
# This lab is being written.

# %%
import torch

print(torch.__version__)
