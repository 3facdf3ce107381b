/**
 * LeNet-5 as in kuangliu/pytorch-cifar, with ReLU and max pooling. A 28x28 input gets
 * padding 2 on the first convolution (the original MNIST setup), so both 28x28 and
 * 32x32 inputs reach the classifier as 16x5x5 features.
 */
import { type Arch, cut } from './common.js';

export const lenet5: Arch = ({ b, x, classes, ch }) => {
  const pad = Math.min(x.shape[1]!, x.shape[2]!) < 32 ? 2 : 0;
  const pool1 = b.maxPool(b.relu(b.conv(x, { out: ch(6), kernel: 5, pad }, 'conv1'), 'conv1.relu'), { kernel: 2 }, 'pool1');
  const pool2 = b.maxPool(b.relu(b.conv(pool1, { out: ch(16), kernel: 5 }, 'conv2'), 'conv2.relu'), { kernel: 2 }, 'pool2');
  const fc1 = b.relu(b.linear(b.flatten(pool2, 'flatten'), ch(120), 'fc1'), 'fc1.relu');
  const fc2 = b.relu(b.linear(fc1, ch(84), 'fc2'), 'fc2.relu');
  return {
    logits: b.linear(fc2, classes, 'fc3', { init: 'uniform' }),
    cuts: [cut('stem', pool1, 'stem'), cut('conv2', pool2, 'block'), cut('fc1', fc1, 'block'), cut('features', fc2, 'features')],
  };
};
