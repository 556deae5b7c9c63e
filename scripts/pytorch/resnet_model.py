"""ResNet-18, CIFAR variant, as ferrite's models/resnet.hpp: a 3x3 stride-1 stem (no bias) + BN + ReLU,
no max-pool, four stages of two BasicBlocks (width, 2w, 4w, 8w channels; stride 2 and a 1x1 conv + BN
shortcut at the first block of stages 2-4), global average pooling, Linear -> classes.
Module names as torchvision's resnet18 (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc), so a
state_dict crosses to ferrite by name. Default PyTorch init (kaiming-uniform convs, BN weight 1 / bias 0).
"""
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    def __init__(self, blocks=(2, 2, 2, 2), width=64, in_channels=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        cin = width
        for stage, n in enumerate(blocks):
            cout = width << stage
            layer = []
            for j in range(n):
                layer.append(BasicBlock(cin, cout, 2 if (j == 0 and stage > 0) else 1))
                cin = cout
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))
